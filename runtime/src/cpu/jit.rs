//! Compiles loop nests to machine code with Cranelift (`compiler::codegen::cpu` builds the
//! functions). The module owns the code: it lives as long as the executable that calls it.

use crate::error::RunError;
use cranelift_codegen::ir::{types::F32, AbiParam, Signature};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use hoyer_compiler::codegen::cpu::{loop_function, MathImports, Target};
use hoyer_compiler::kernel::Loop;
use hoyer_front::codes::Code;
use hoyer_ir::Dtype;

/// `kernel(args, lo, hi)`: see `compiler::codegen::cpu`.
pub type KernelFn = unsafe extern "C" fn(*const *mut f32, *const i64, *const i64);

extern "C" fn hoyer_expf(x: f32) -> f32 {
    x.exp()
}
extern "C" fn hoyer_logf(x: f32) -> f32 {
    x.ln()
}
extern "C" fn hoyer_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}
// The interpreter's float32 evaluation calls the same libm functions.
extern "C" fn hoyer_tanhf(x: f32) -> f32 {
    libm::tanhf(x)
}
extern "C" fn hoyer_erff(x: f32) -> f32 {
    libm::erff(x)
}

fn failed(what: &str, e: impl std::fmt::Display) -> RunError {
    RunError::new(Code::Internal, format!("Cranelift: {what}: {e}"))
}

pub struct Jit {
    module: JITModule,
    target: Target,
}

/// Whether this machine has fused multiply-add instructions (the code generator then uses
/// them; without, multiplies and adds stay separate).
pub fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("fma")
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

impl Jit {
    pub fn new() -> Result<Jit, RunError> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| failed("settings", e))?;
        flags.set("is_pic", "false").map_err(|e| failed("settings", e))?;
        let isa = cranelift_native::builder()
            .map_err(|e| RunError::new(Code::NoDevice, format!("Cranelift does not support this machine: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| failed("target", e))?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        builder.symbol("hoyer_expf", hoyer_expf as *const u8);
        builder.symbol("hoyer_logf", hoyer_logf as *const u8);
        builder.symbol("hoyer_powf", hoyer_powf as *const u8);
        builder.symbol("hoyer_tanhf", hoyer_tanhf as *const u8);
        builder.symbol("hoyer_erff", hoyer_erff as *const u8);
        let mut module = JITModule::new(builder);
        let call_conv = module.isa().default_call_conv();
        let mut declare = |name: &str, arity: usize| -> Result<u32, RunError> {
            let mut sig = Signature::new(call_conv);
            sig.params.extend(std::iter::repeat_n(AbiParam::new(F32), arity));
            sig.returns.push(AbiParam::new(F32));
            module.declare_function(name, Linkage::Import, &sig).map(|id| id.as_u32()).map_err(|e| failed("import", e))
        };
        let math = MathImports {
            expf: declare("hoyer_expf", 1)?,
            logf: declare("hoyer_logf", 1)?,
            powf: declare("hoyer_powf", 2)?,
            tanhf: declare("hoyer_tanhf", 1)?,
            erff: declare("hoyer_erff", 1)?,
        };
        Ok(Jit { module, target: Target { call_conv, math } })
    }

    /// Compiles every loop nest, each named (`k5`, `k52_then`) so that a profile reads
    /// against `--emit kernels`; the functions stay valid while `self` lives.
    pub fn compile(&mut self, loops: &[(String, &Loop, Vec<Dtype>)]) -> Result<Vec<KernelFn>, RunError> {
        let mut ids = Vec::new();
        for (i, (name, l, dtypes)) in loops.iter().enumerate() {
            let func = loop_function(l, dtypes, i as u32, &self.target)?;
            let id = self
                .module
                .declare_function(name, Linkage::Local, &func.signature)
                .map_err(|e| failed("declare", e))?;
            let mut ctx = self.module.make_context();
            ctx.func = func;
            self.module
                .define_function(id, &mut ctx)
                .map_err(|e| failed(&format!("kernel {name}"), format!("{e:?}")))?;
            self.module.clear_context(&mut ctx);
            ids.push(id);
        }
        self.module.finalize_definitions().map_err(|e| failed("finalize", e))?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let code = self.module.get_finalized_function(id);
                // SAFETY: `loop_function` builds exactly this signature, in the host's calling
                // convention, and the code lives as long as the module.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
            })
            .collect())
    }
}
