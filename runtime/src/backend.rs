//! Back ends compile planned graphs (`hoyer_compiler::pipeline`) into executables that run
//! on the tensors of a `Store`. Every back end takes the same plan; the reference
//! interpreter is one of them, and the oracle of the others.

use crate::error::RunError;
use crate::store::{Store, TensorId};
use hoyer_compiler::pipeline::{Options, Planned};
use hoyer_front::codes::Code;
use hoyer_ir::interp::{self, Precision};
use hoyer_ir::Graph;
use std::collections::HashMap;

/// Which store tensor each named buffer of a program uses.
pub type Bindings = HashMap<String, TensorId>;

/// The time one kernel took over the runs since `Executable::time_kernels`.
#[derive(Debug, Clone)]
pub struct KernelTime {
    /// As `--emit kernels` names it (`k56`).
    pub name: String,
    /// Its shape: `matmul 6400×500×50`, `loop [100, 12, 12, 20] reduce [5, 5]`.
    pub what: String,
    pub time: std::time::Duration,
}

/// A compiled program bound to the tensors of one store.
pub trait Executable {
    /// Runs the program once: reads and updates its tensors in the store.
    fn run(&mut self, store: &mut Store) -> Result<(), RunError>;
    /// The tensor a buffer of the program is bound to.
    fn tensor(&self, name: &str) -> Option<TensorId>;
    /// Times each kernel of every later run (`hoyerc bench --kernels`); false where the back
    /// end cannot.
    fn time_kernels(&mut self) -> bool {
        false
    }
    /// Each kernel's time since `time_kernels`, in program order.
    fn kernel_times(&self) -> Vec<KernelTime> {
        Vec::new()
    }
}

pub trait Backend {
    fn name(&self) -> &'static str;
    /// The back end as a run's header names it (`cpu, 16 threads`).
    fn describe(&self) -> String {
        self.name().to_string()
    }
    /// The pipeline options this back end's code generator wants.
    fn options(&self) -> Options;
    /// Compiles `planned`. Its named buffers use the tensors in `bind`; a name not there gets
    /// a new tensor of its own (see `Executable::tensor`).
    fn compile(&self, planned: &Planned, store: &mut Store, bind: &Bindings) -> Result<Box<dyn Executable>, RunError>;
}

/// The tensor for each of `names` (with shapes): from `bind`, or new ones.
pub fn bind_all(
    store: &mut Store,
    names: &[(String, Vec<usize>)],
    bind: &Bindings,
) -> Result<HashMap<String, TensorId>, RunError> {
    let mut out = HashMap::new();
    for (name, shape) in names {
        let id = match bind.get(name) {
            Some(&id) => {
                if store.shape(id) != shape.as_slice() {
                    return Err(RunError::new(
                        Code::Internal,
                        format!("`{name}` is bound to a {:?} tensor, the program needs {shape:?}", store.shape(id)),
                    ));
                }
                id
            }
            None => store.alloc(name, shape)?,
        };
        out.insert(name.clone(), id);
    }
    Ok(out)
}

/// The reference interpreter, in float32 (every result rounded to f32).
pub struct Interpreter;

struct Interpreted {
    graph: Graph,
    store: u64,
    inputs: Vec<(String, TensorId)>,
    outputs: Vec<(String, TensorId)>,
    names: HashMap<String, TensorId>,
}

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn options(&self) -> Options {
        Options::default()
    }
    fn compile(&self, planned: &Planned, store: &mut Store, bind: &Bindings) -> Result<Box<dyn Executable>, RunError> {
        let g = &planned.graph;
        let mut names: Vec<(String, Vec<usize>)> =
            g.inputs().map(|(id, n, _)| (n.to_string(), g.shape(id).to_vec())).collect();
        for (n, v) in &g.outputs {
            if g.input(n).is_none() {
                names.push((n.clone(), g.shape(*v).to_vec()));
            }
        }
        let names = bind_all(store, &names, bind)?;
        let inputs = g.inputs().map(|(_, n, _)| (n.to_string(), names[n])).collect();
        let outputs = g.outputs.iter().map(|(n, _)| (n.clone(), names[n])).collect();
        Ok(Box::new(Interpreted { graph: g.clone(), store: store.id(), inputs, outputs, names }))
    }
}

impl Executable for Interpreted {
    fn run(&mut self, store: &mut Store) -> Result<(), RunError> {
        if store.id() != self.store {
            return Err(RunError::new(Code::Internal, "a program ran on another store than it was compiled for"));
        }
        let mut inputs: HashMap<String, Vec<f64>> = HashMap::new();
        for (n, id) in &self.inputs {
            inputs.insert(n.clone(), store.read(*id)?.iter().map(|&x| x as f64).collect());
        }
        let out = interp::outputs(&self.graph, &inputs, Precision::F32)
            .map_err(|e| RunError::new(Code::RunFailed, format!("the interpreter stopped: {e}")))?;
        for (name, id) in &self.outputs {
            let v: Vec<f32> = out[name].iter().map(|&x| x as f32).collect();
            store.write(*id, &v)?;
        }
        Ok(())
    }
    fn tensor(&self, name: &str) -> Option<TensorId> {
        self.names.get(name).copied()
    }
}
