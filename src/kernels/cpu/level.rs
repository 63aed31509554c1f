//! The SIMD level the crate's own kernels run at, and the switch that caps it.
//!
//! Every SIMD kernel in [`super`] is dispatched through [`arch`], which returns the best
//! instruction set the CPU has, **capped** by the environment variable `ITLIN_SIMD`:
//!
//! | `ITLIN_SIMD` | kernels run as |
//! |---|---|
//! | unset, `native`, `auto` | the best the CPU has (AVX-512 = x86-64-v4, else AVX2 + FMA = x86-64-v3, else scalar) |
//! | `avx2`, `v3`, `x86-64-v3` | at most AVX2 + FMA, so an AVX-512 machine computes what an AVX2-only machine does |
//! | `scalar`, `none` | the scalar twins' code paths (no vector instructions in the crate's kernels) |
//! | `avx512`, `v4`, `x86-64-v4` | at most AVX-512 (the same as `native` on x86-64) |
//!
//! The variable is read once, at the first kernel call; changing it later in the same
//! process has no effect. A cap above what the CPU has is the CPU's level (the cap never
//! enables an instruction set the CPU lacks). The cap covers the crate's kernels
//! (dot products, axpys, outer products and the Jacobian's streaming stores, `tanh`); faer's
//! GEMM and factorisations choose their own instruction set.
//!
//! Why it exists: reductions with 4 accumulators of `W` lanes sum in a different order for
//! each width `W`, so results differ between machine classes by rounding. Same machine,
//! level, seed and thread count give the same numbers; the cap lets an AVX-512 machine run
//! the tests (and the benchmarks) as an AVX2-only or a scalar machine would.

use pulp::Arch;
use std::sync::OnceLock;

/// The environment variable that caps the SIMD level (see the [module docs](self)).
pub const SIMD_ENV: &str = "ITLIN_SIMD";

/// An instruction-set level for the crate's SIMD kernels, from lowest to highest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimdLevel {
    /// No vector instructions: the kernels run their scalar code paths.
    Scalar,
    /// x86-64-v3: AVX2 and FMA, 256-bit vectors (on other architectures: their native SIMD).
    V3,
    /// x86-64-v4: AVX-512 (F, BW, CD, DQ, VL), 512-bit vectors.
    V4,
}

impl SimdLevel {
    /// Parses a cap as written in `ITLIN_SIMD`; `Ok(None)` means "no cap" (`native`).
    ///
    /// # Errors
    /// A one-line message naming the accepted values.
    pub fn parse_cap(s: &str) -> Result<Option<SimdLevel>, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "native" | "auto" => Ok(None),
            "scalar" | "none" => Ok(Some(SimdLevel::Scalar)),
            "avx2" | "v3" | "x86-64-v3" => Ok(Some(SimdLevel::V3)),
            "avx512" | "avx-512" | "v4" | "x86-64-v4" => Ok(Some(SimdLevel::V4)),
            other => Err(format!(
                "{SIMD_ENV}={other:?}: expected one of native, avx512, avx2, scalar"
            )),
        }
    }

    /// A short name: `scalar`, `avx2` or `avx512` (on x86-64; `simd` for V3 elsewhere).
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Scalar => "scalar",
            SimdLevel::V3 if cfg!(target_arch = "x86_64") => "avx2",
            SimdLevel::V3 => "simd",
            SimdLevel::V4 => "avx512",
        }
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The cap requested by `ITLIN_SIMD` (`Ok(None)`: none), read now.
///
/// # Errors
/// When the variable holds an unknown value (the CLI refuses to start then; the library's
/// kernels ignore such a value and run at the native level, with one warning on stderr).
pub fn requested_cap() -> Result<Option<SimdLevel>, String> {
    match std::env::var(SIMD_ENV) {
        Ok(v) => SimdLevel::parse_cap(&v),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{SIMD_ENV} is not valid Unicode")),
    }
}

/// The highest level this CPU supports.
pub fn native_level() -> SimdLevel {
    level_of(Arch::new())
}

fn level_of(arch: Arch) -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        match arch {
            Arch::V4(_) => SimdLevel::V4,
            Arch::V3(_) => SimdLevel::V3,
            _ => SimdLevel::Scalar,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        #[allow(unreachable_patterns)]
        match arch {
            Arch::Scalar => SimdLevel::Scalar,
            _ => SimdLevel::V3,
        }
    }
}

/// The dispatch target at most `cap`: the CPU's best instruction set, lowered to `cap`.
fn capped_arch(cap: Option<SimdLevel>) -> Arch {
    let native = Arch::new();
    let Some(cap) = cap else { return native };
    if cap == SimdLevel::Scalar {
        return Arch::Scalar;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if cap == SimdLevel::V3 && level_of(native) == SimdLevel::V4 {
            return pulp::x86::V3::try_new().map_or(Arch::Scalar, Arch::V3);
        }
    }
    native
}

fn state() -> &'static (Arch, SimdLevel) {
    static STATE: OnceLock<(Arch, SimdLevel)> = OnceLock::new();
    STATE.get_or_init(|| {
        let cap = requested_cap().unwrap_or_else(|e| {
            eprintln!("warning: {e}; running the SIMD kernels at the native level");
            None
        });
        let arch = capped_arch(cap);
        (arch, level_of(arch))
    })
}

/// The pulp dispatch target of every SIMD kernel in the crate: [`native_level`] capped by
/// `ITLIN_SIMD` (read once per process).
#[inline]
pub fn arch() -> Arch {
    state().0
}

/// The level the crate's kernels run at in this process (after the `ITLIN_SIMD` cap).
pub fn simd_level() -> SimdLevel {
    state().1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_and_order() {
        assert_eq!(SimdLevel::parse_cap("native"), Ok(None));
        assert_eq!(SimdLevel::parse_cap(""), Ok(None));
        assert_eq!(SimdLevel::parse_cap(" AVX2 "), Ok(Some(SimdLevel::V3)));
        assert_eq!(SimdLevel::parse_cap("scalar"), Ok(Some(SimdLevel::Scalar)));
        assert_eq!(SimdLevel::parse_cap("x86-64-v4"), Ok(Some(SimdLevel::V4)));
        let e = SimdLevel::parse_cap("sse9").unwrap_err();
        assert!(e.contains("sse9") && !e.contains('\n'), "{e}");
        assert!(SimdLevel::Scalar < SimdLevel::V3 && SimdLevel::V3 < SimdLevel::V4);
    }

    #[test]
    fn a_cap_never_raises_the_level() {
        let native = native_level();
        for cap in [SimdLevel::Scalar, SimdLevel::V3, SimdLevel::V4] {
            let got = level_of(capped_arch(Some(cap)));
            assert_eq!(
                got,
                cap.min(native),
                "cap {cap} on a {native} CPU gave {got}"
            );
        }
        assert_eq!(level_of(capped_arch(None)), native);
    }
}
