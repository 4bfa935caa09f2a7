//! Back ends run compiled graphs. Every back end takes the same IR and the same named
//! float32 buffers; the reference interpreter is one of them, and the oracle of the others.

use hoyer_compiler::ir::interp::{self, Precision};
use hoyer_compiler::ir::Graph;
use std::collections::HashMap;

/// Named float32 buffers.
pub type Buffers = HashMap<String, Vec<f32>>;

/// A graph made ready to run. Inputs are copied in, the graph runs, outputs are read in
/// place: a training step copies each parameter once in and once out, and allocates nothing.
pub trait Compiled {
    /// Copies `data` into the input `name`. An input keeps its value until it is set again.
    fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), String>;
    /// Runs the graph on the inputs as set.
    fn execute(&mut self) -> Result<(), String>;
    /// The output `name` of the last execution.
    fn output(&self, name: &str) -> Option<&[f32]>;
    fn output_names(&self) -> Vec<String>;
    /// From now on, after each execution the output `output` becomes the input `input` (a
    /// parameter or optimizer state carried to the next step): no copy in or out per step.
    /// Reading `output` afterwards still gives its latest value.
    fn carry(&mut self, output: &str, input: &str) -> Result<(), String>;

    /// Sets every input, runs, and returns copies of all outputs.
    fn run(&mut self, inputs: &HashMap<&str, &[f32]>) -> Result<Buffers, String> {
        for (name, data) in inputs {
            self.set_input(name, data)?;
        }
        self.execute()?;
        Ok(self.output_names().into_iter().filter_map(|n| self.output(&n).map(|v| (n.clone(), v.to_vec()))).collect())
    }
}

/// Checks that a buffer for input `name` has the size the graph expects.
pub fn check_size(name: &str, got: usize, want: usize) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("input `{name}` has {got} values, expected {want}"))
    }
}

pub trait Backend {
    fn name(&self) -> &'static str;
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Compiled>, String>;
}

/// The reference interpreter, in float32 (every result rounded to f32).
pub struct Interpreter;

struct Interpreted {
    graph: Graph,
    inputs: HashMap<String, Vec<f64>>,
    outputs: Buffers,
    carried: Vec<(String, String)>,
}

impl Backend for Interpreter {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn compile(&self, graph: &Graph) -> Result<Box<dyn Compiled>, String> {
        graph.validate()?;
        Ok(Box::new(Interpreted {
            graph: graph.clone(),
            inputs: HashMap::new(),
            outputs: Buffers::new(),
            carried: vec![],
        }))
    }
}

impl Compiled for Interpreted {
    fn set_input(&mut self, name: &str, data: &[f32]) -> Result<(), String> {
        if let Some(id) = self.graph.input(name) {
            check_size(name, data.len(), hoyer_compiler::ir::numel(self.graph.shape(id)))?;
            self.inputs.insert(name.to_string(), data.iter().map(|&x| x as f64).collect());
        }
        Ok(())
    }
    fn execute(&mut self) -> Result<(), String> {
        let out = interp::outputs(&self.graph, &self.inputs, Precision::F32)?;
        self.outputs = out.into_iter().map(|(k, v)| (k, v.into_iter().map(|x| x as f32).collect())).collect();
        for (output, input) in &self.carried {
            let v: Vec<f64> = self.outputs[output].iter().map(|&x| x as f64).collect();
            self.inputs.insert(input.clone(), v);
        }
        Ok(())
    }
    fn carry(&mut self, output: &str, input: &str) -> Result<(), String> {
        self.graph.output(output).ok_or_else(|| format!("no output `{output}`"))?;
        self.graph.input(input).ok_or_else(|| format!("no input `{input}`"))?;
        self.carried.push((output.to_string(), input.to_string()));
        Ok(())
    }
    fn output(&self, name: &str) -> Option<&[f32]> {
        self.outputs.get(name).map(Vec::as_slice)
    }
    fn output_names(&self) -> Vec<String> {
        self.graph.outputs.iter().map(|o| o.0.clone()).collect()
    }
}
