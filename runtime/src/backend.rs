//! Back ends compile planned graphs (`hoyer_compiler::pipeline`) into executables that run
//! on the tensors of a `Store`. Every back end takes the same plan; the reference
//! interpreter is one of them, and the oracle of the others.

use crate::error::RunError;
use crate::store::{Store, TensorId};
use hoyer_compiler::pipeline::{Options, Planned};
use hoyer_front::codes::Code;
use hoyer_ir::interp::{self, Precision};
use hoyer_ir::{Dtype, Graph, Role};
use std::collections::HashMap;

/// Which store tensor each bound buffer of a program uses, by role.
pub type Bindings = HashMap<Role, TensorId>;

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
    /// The tensor a bound buffer of the program uses.
    fn tensor(&self, role: &Role) -> Option<TensorId>;
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
    /// Compiles `planned`. Its bound buffers use the tensors in `bind`; a role not there gets
    /// a new tensor of its own (see `Executable::tensor`).
    fn compile(&self, planned: &Planned, store: &mut Store, bind: &Bindings) -> Result<Box<dyn Executable>, RunError>;
}

/// The tensor for each of `roles` (with shapes and types): from `bind`, or new ones.
pub fn bind_all(
    store: &mut Store,
    roles: &[(Role, Vec<usize>, Dtype)],
    bind: &Bindings,
) -> Result<HashMap<Role, TensorId>, RunError> {
    let mut out = HashMap::new();
    for (role, shape, dtype) in roles {
        let id = match bind.get(role) {
            Some(&id) => {
                if store.shape(id) != shape.as_slice() || store.dtype(id) != *dtype {
                    return Err(RunError::new(
                        Code::Internal,
                        format!(
                            "`{role}` is bound to a {}{:?} tensor, the program needs {dtype}{shape:?}",
                            store.dtype(id),
                            store.shape(id)
                        ),
                    ));
                }
                id
            }
            None => store.alloc(&role.to_string(), shape, *dtype)?,
        };
        out.insert(role.clone(), id);
    }
    Ok(out)
}

/// The reference interpreter, in float32 (every result rounded to f32).
pub struct Interpreter;

struct Interpreted {
    graph: Graph,
    store: u64,
    tensors: HashMap<Role, TensorId>,
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
        let roles: Vec<(Role, Vec<usize>, Dtype)> = planned
            .signature
            .inputs
            .iter()
            .chain(&planned.signature.outputs)
            .map(|s| (s.role.clone(), s.shape.clone(), s.dtype))
            .collect();
        let tensors = bind_all(store, &roles, bind)?;
        Ok(Box::new(Interpreted { graph: g.clone(), store: store.id(), tensors }))
    }
}

impl Executable for Interpreted {
    fn run(&mut self, store: &mut Store) -> Result<(), RunError> {
        if store.id() != self.store {
            return Err(RunError::new(Code::Internal, "a program ran on another store than it was compiled for"));
        }
        let mut inputs = interp::Values::new();
        for (_, role) in self.graph.inputs() {
            let id = self.tensors[role];
            let values: Vec<f64> = match store.dtype(id) {
                Dtype::F32 => store.read(id)?.iter().map(|&x| x as f64).collect(),
                Dtype::I32 => store.read_i32(id)?.iter().map(|&x| x as f64).collect(),
            };
            inputs.insert(role.clone(), values);
        }
        let out = interp::outputs(&self.graph, &inputs, Precision::F32)
            .map_err(|e| RunError::new(Code::RunFailed, format!("the interpreter stopped: {e}")))?;
        for (role, _) in &self.graph.outputs {
            let id = self.tensors[role];
            match store.dtype(id) {
                Dtype::F32 => store.write(id, &out[role].iter().map(|&x| x as f32).collect::<Vec<_>>())?,
                Dtype::I32 => store.write_i32(id, &out[role].iter().map(|&x| x as i32).collect::<Vec<_>>())?,
            }
        }
        Ok(())
    }
    fn tensor(&self, role: &Role) -> Option<TensorId> {
        self.tensors.get(role).copied()
    }
}
