//! The compiled programs of a run, each compiled once.
//!
//! A run needs a training step per phase and batch size, a forward pass per evaluation batch
//! size, and a gather per data split and batch size; the memory estimate reads the steps'
//! scratch sizes before anything runs, and a shrink changes the model the later phases
//! train. Every program is asked of here, keyed by what it is compiled from (the phase, the
//! batch size and the model's parameter shapes; the split's size and layout), and compiled
//! the first time only. `compiled()` lists what was compiled, in order (run.json records it).

use crate::error::RunError;
use hoyer_compiler::graph::lower::Augmentation;
use hoyer_compiler::pipeline::{self, Options, Planned};
use hoyer_front::program::{Model, PhasePlan, Program};
use hoyer_ir::Dtype;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::rc::Rc;

pub struct Plans {
    opts: Options,
    cache: RefCell<HashMap<String, Rc<Planned>>>,
    compiled: RefCell<Vec<Compiled>>,
}

/// One compilation: what, for how many samples, of a model of how many parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    pub what: String,
    pub batch: usize,
    pub parameters: u64,
}

impl Plans {
    /// For a back end with these code-generation options.
    pub fn new(opts: Options) -> Plans {
        Plans { opts, cache: RefCell::default(), compiled: RefCell::default() }
    }

    /// Phase `phase`'s training step of `model` over `batch` samples.
    pub fn step(
        &self,
        program: &Program,
        model: &Model,
        phase: &PhasePlan,
        batch: usize,
    ) -> Result<Rc<Planned>, RunError> {
        let key = format!("step {} {batch} {}", phase.name, fingerprint(model));
        let what = Compiled { what: format!("step {}", phase.name), batch, parameters: model.parameter_count() };
        self.get(key, what, || Ok(pipeline::step(program, model, phase, batch, &self.opts)?.1))
    }

    /// The forward pass of `model` over `batch` samples (evaluation).
    pub fn eval(&self, model: &Model, batch: usize) -> Result<Rc<Planned>, RunError> {
        let key = format!("eval {batch} {}", fingerprint(model));
        let what = Compiled { what: "evaluation".into(), batch, parameters: model.parameter_count() };
        self.get(key, what, || Ok(pipeline::eval(model, batch, &self.opts)?))
    }

    /// The gather of `batch` samples from a split of `rows` samples.
    pub fn gather(
        &self,
        rows: usize,
        sample: &[usize],
        dtype: Dtype,
        targets: usize,
        batch: usize,
        augment: Option<Augmentation>,
    ) -> Result<Rc<Planned>, RunError> {
        let key = format!("gather {rows} {sample:?} {dtype} {targets} {batch} {augment:?}");
        let what = Compiled { what: format!("gather from {rows} samples"), batch, parameters: 0 };
        self.get(key, what, || Ok(pipeline::gather(rows, sample, dtype, targets, batch, augment, &self.opts)?))
    }

    /// Everything compiled so far, in order.
    pub fn compiled(&self) -> Vec<Compiled> {
        self.compiled.borrow().clone()
    }

    fn get(
        &self,
        key: String,
        what: Compiled,
        compile: impl FnOnce() -> Result<Planned, RunError>,
    ) -> Result<Rc<Planned>, RunError> {
        if let Some(p) = self.cache.borrow().get(&key) {
            return Ok(p.clone());
        }
        let planned = Rc::new(compile()?);
        self.cache.borrow_mut().insert(key, planned.clone());
        self.compiled.borrow_mut().push(what);
        Ok(planned)
    }
}

/// What a model's programs depend on beyond the spec: its layers' widths, which shrink
/// changes (read from its parameters' names and shapes).
fn fingerprint(model: &Model) -> String {
    let mut s = model.name.clone();
    for p in &model.params {
        let _ = write!(s, " {}{:?}", p.name, p.shape);
    }
    s
}
