#!/usr/bin/env python3
"""Generated specs for the compile-time benchmark (bench/compile_time.sh):

    generate_spec.py penalties N   quickstart with N penalty lines (each its own strength,
                                   regularizer and selector), about 50 bytes a line
    generate_spec.py deep N        a model of N dense layers, Hoyer-Square on every weight
"""
import os
import sys
def deep(n):
    layers="".join(f"    fc{i+1} = dense(fc{i}, 32) |> relu\n" for i in range(1,n))
    return f"""// A generated model of {n} dense layers (compile-time benchmark, BENCHMARKS.md).
data blobs = synthetic(classes = 4, train = 2000, test = 500, noise = 1.0, seed = 7)

model deep(x: f32[16]) {{
    fc1 = dense(x, 32) |> relu
{layers}    out = dense(fc{n}, 4)
    return out
}}

train deep on blobs {{
    batch 50
    phase sparsify {{
        epochs 1
        optimizer adam(lr = 1e-3)
        penalty 1e-4 * hoyer_square(*.weight)
    }}
}}
"""
def penalties(n):
    base=open(os.path.join(os.path.dirname(__file__), "..", "examples", "quickstart.hoyer")).read()
    sel=["fc1.weight","fc2.weight","fc3.weight","*.weight","fc1.bias"]
    fns=["hoyer_square","l1","hoyer"]
    lines="".join(f"        penalty {1e-5*(i%7+1):.1e} * {fns[i%3]}({sel[i%5]})\n" for i in range(n))
    return base.replace("        penalty 1e-3 * hoyer_square(*.weight)     // summed over every selected tensor\n", lines)
kind, n = sys.argv[1], int(sys.argv[2])
print(deep(n) if kind == "deep" else penalties(n), end="")
