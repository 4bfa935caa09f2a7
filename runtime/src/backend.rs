//! Back ends run compiled graphs. Every back end takes the same IR and the same named
//! float32 buffers; the reference interpreter is one of them, and the oracle of the others.

use hoyer_compiler::ir::interp::{self, Precision};
use hoyer_compiler::ir::Graph;
use std::collections::HashMap;

/// Named float32 buffers.
pub type Buffers = HashMap<String, Vec<f32>>;

/// A graph made ready to run.
pub trait Compiled {
    /// Runs the graph on `inputs` (every input of the graph by name) and returns its outputs.
    fn run(&mut self, inputs: &HashMap<&str, &[f32]>) -> Result<Buffers, String>;
}

pub trait Backend {
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Compiled>, String>;
}

/// The reference interpreter, in float32 (every result rounded to f32).
pub struct Interpreter;

struct Interpreted(Graph);

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Compiled>, String> {
        graph.validate()?;
        Ok(Box::new(Interpreted(graph.clone())))
    }
}

impl Compiled for Interpreted {
    fn run(&mut self, inputs: &HashMap<&str, &[f32]>) -> Result<Buffers, String> {
        let wide: HashMap<String, Vec<f64>> =
            inputs.iter().map(|(k, v)| (k.to_string(), v.iter().map(|&x| x as f64).collect())).collect();
        let out = interp::outputs(&self.0, &wide, Precision::F32)?;
        Ok(out.into_iter().map(|(k, v)| (k, v.into_iter().map(|x| x as f32).collect())).collect())
    }
}
