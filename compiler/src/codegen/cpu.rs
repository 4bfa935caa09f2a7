//! Cranelift code for fused kernels (to come).
