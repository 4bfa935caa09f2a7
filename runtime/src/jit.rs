//! Compiles fused kernels to machine code with Cranelift (`compiler::codegen::cpu` builds the
//! functions). The module owns the code: it lives as long as the compiled program that calls
//! the kernels.

use cranelift_codegen::ir::{types::F32, AbiParam, Signature};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use hoyer_compiler::codegen::cpu::{kernel_function, MathImports};
use hoyer_compiler::codegen::KernelProgram;

/// `kernel(buffers, from, to, acc)`: see `compiler::codegen::cpu`.
pub type KernelFn = unsafe extern "C" fn(*const *mut f32, u64, u64, *mut f64);

extern "C" fn hoyer_expf(x: f32) -> f32 {
    x.exp()
}
extern "C" fn hoyer_logf(x: f32) -> f32 {
    x.ln()
}
extern "C" fn hoyer_powf(x: f32, y: f32) -> f32 {
    x.powf(y)
}

pub struct Jit {
    module: JITModule,
    math: MathImports,
}

impl Jit {
    pub fn new() -> Result<Jit, String> {
        let mut flags = settings::builder();
        flags.set("opt_level", "speed").map_err(|e| e.to_string())?;
        flags.set("is_pic", "false").map_err(|e| e.to_string())?;
        let isa = cranelift_native::builder()
            .map_err(|e| format!("Cranelift does not support this machine: {e}"))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| format!("Cranelift: {e}"))?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        builder.symbol("hoyer_expf", hoyer_expf as *const u8);
        builder.symbol("hoyer_logf", hoyer_logf as *const u8);
        builder.symbol("hoyer_powf", hoyer_powf as *const u8);
        let mut module = JITModule::new(builder);
        let call_conv = module.isa().default_call_conv();
        let mut declare = |name: &str, arity: usize| -> Result<u32, String> {
            let mut sig = Signature::new(call_conv);
            sig.params.extend(std::iter::repeat_n(AbiParam::new(F32), arity));
            sig.returns.push(AbiParam::new(F32));
            module.declare_function(name, Linkage::Import, &sig).map(|id| id.as_u32()).map_err(|e| e.to_string())
        };
        let math = MathImports {
            expf: declare("hoyer_expf", 1)?,
            logf: declare("hoyer_logf", 1)?,
            powf: declare("hoyer_powf", 2)?,
        };
        Ok(Jit { module, math })
    }

    /// Compiles every kernel program; the functions stay valid while `self` lives.
    pub fn compile(&mut self, programs: &[KernelProgram]) -> Result<Vec<KernelFn>, String> {
        let call_conv = self.module.isa().default_call_conv();
        let mut ids = Vec::new();
        for (i, p) in programs.iter().enumerate() {
            let func = kernel_function(p, i as u32, call_conv, self.math);
            let id = self
                .module
                .declare_function(&format!("kernel{i}"), Linkage::Local, &func.signature)
                .map_err(|e| e.to_string())?;
            let mut ctx = self.module.make_context();
            ctx.func = func;
            self.module
                .define_function(id, &mut ctx)
                .map_err(|e| format!("Cranelift could not compile kernel {i}: {e:?}"))?;
            self.module.clear_context(&mut ctx);
            ids.push(id);
        }
        self.module.finalize_definitions().map_err(|e| e.to_string())?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let code = self.module.get_finalized_function(id);
                // SAFETY: `kernel_function` builds exactly this signature, in the host's calling
                // convention, and the code lives as long as the module.
                unsafe { std::mem::transmute::<*const u8, KernelFn>(code) }
            })
            .collect())
    }
}
