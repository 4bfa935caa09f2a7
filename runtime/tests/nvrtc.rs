//! Every kernel the CUDA renderer emits for the examples compiles with NVRTC, for sm_80 and
//! sm_90, without an error or a warning. NVRTC runs without a GPU; where its library is
//! missing the test says so and skips, unless HOYER_REQUIRE_NVRTC=1 (CI sets it).

mod common;

use common::programs;
use hoyer_compiler::codegen::cuda;
use hoyer_runtime::cuda::nvrtc;

fn nvrtc_present() -> bool {
    match nvrtc::available() {
        Ok(()) => true,
        Err(e) => {
            assert!(
                std::env::var_os("HOYER_REQUIRE_NVRTC").is_none_or(|v| v == "0"),
                "HOYER_REQUIRE_NVRTC is set but NVRTC is missing: {}",
                e.message
            );
            eprintln!("skipped: {} (see .ci/run for how CI installs it)", e.message);
            false
        }
    }
}

#[test]
fn every_emitted_kernel_compiles_cleanly() {
    if !nvrtc_present() {
        return;
    }
    let mut kernels = 0;
    for (name, program) in programs() {
        let rendered = cuda::render(&program).unwrap();
        for arch in ["sm_80", "sm_90"] {
            match nvrtc::compile(&rendered.source, &format!("{name}.cu"), arch) {
                Ok(c) => {
                    assert!(
                        c.log.trim().is_empty(),
                        "{name} for {arch}: NVRTC warned:\n{}\n{}",
                        c.log,
                        rendered.source
                    );
                    assert!(!c.image.is_empty());
                }
                Err(f) => panic!("{name} for {arch}: {}\n{}\n{}", f.message, f.log, rendered.source),
            }
        }
        kernels += rendered.launches.len();
    }
    assert!(kernels > 300, "only {kernels} kernels");
}

/// The test above can fail: a kernel with a mistake in it does not compile, and one with a
/// warning is reported.
#[test]
fn a_broken_kernel_fails_and_a_warning_shows() {
    if !nvrtc_present() {
        return;
    }
    let (_, program) = programs().into_iter().next().unwrap();
    let source = cuda::render(&program).unwrap().source;
    let broken = source.replacen("fmaf(", "fmaf_undefined(", 1);
    assert_ne!(broken, source, "the quickstart step has a fused multiply-add to break");
    let f = nvrtc::compile(&broken, "broken.cu", "sm_80").err().expect("a broken kernel must not compile");
    assert!(f.log.contains("fmaf_undefined"), "{}", f.log);
    let warned = source.replacen("{\n", "{\n  int unused_variable;\n", 1);
    let c = nvrtc::compile(&warned, "warned.cu", "sm_80").expect("a warning is not an error");
    assert!(c.log.contains("unused_variable"), "NVRTC said: {:?}", c.log);
}

/// An architecture this NVRTC does not know is recognized as such (the CUDA back end then
/// says the GPU is too new for it, not that hoyerc has a bug).
#[test]
fn an_unknown_architecture_is_told_apart() {
    if !nvrtc_present() {
        return;
    }
    let source = "extern \"C\" __global__ void k(float* x) { x[0] = 1.0f; }\n";
    let f = nvrtc::compile(source, "k.cu", "sm_999").err().expect("sm_999 does not exist");
    assert!(f.unknown_architecture(), "{} / {}", f.message, f.log);
    let broken = nvrtc::compile("not C", "b.cu", "sm_80").err().expect("not C");
    assert!(!broken.unknown_architecture());
}

/// The kernel cache: a second request for the same source and architecture loads the same
/// cubin without compiling; a damaged file is compiled again and replaced.
#[test]
fn the_kernel_cache_compiles_once() {
    use hoyer_runtime::cuda::cache::{KernelCache, Origin};
    if !nvrtc_present() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("hoyer-kernel-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cache = KernelCache::new(&dir);
    let source = "extern \"C\" __global__ void twice(float* x) { x[threadIdx.x] *= 2.0f; }\n";
    let (first, origin) = cache.cubin(source, "twice.cu", "sm_80").unwrap();
    assert_eq!(origin, Origin::Compiled { stored: true });
    let (again, origin) = cache.cubin(source, "twice.cu", "sm_80").unwrap();
    assert_eq!(origin, Origin::Cached);
    assert_eq!(first.image, again.image);
    let path = cache.path(source, "sm_80");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let (fixed, origin) = cache.cubin(source, "twice.cu", "sm_80").unwrap();
    assert_eq!(origin, Origin::Compiled { stored: true });
    assert_eq!(fixed.image, first.image);
    assert_eq!(cache.cubin(source, "twice.cu", "sm_80").unwrap().1, Origin::Cached);
    let _ = std::fs::remove_dir_all(&dir);
}
