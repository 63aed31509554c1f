//! Run-time compilation of the kernel families with NVRTC.
//!
//! Every family is one `kernels/<name>.cu` file, embedded in the library with `include_str!`
//! and prefixed with the shared prelude `kernels/common.cuh`. [`compile`] turns a family into
//! PTX (for a virtual architecture `compute_XY`) or into a CUBIN (for a real one `sm_XY`).

use crate::{Error, Result};
use cudarc::nvrtc::{result, sys};
use std::ffi::{CStr, CString};

const COMMON: &str = include_str!("../../../kernels/common.cuh");

/// A kernel family: one `.cu` file compiled as one NVRTC program and loaded as one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `J v`, `Jᵀ u` (and with them `Jᵀ(J v)`) on an explicit row-major Jacobian.
    Jvec,
    /// Explicit Jacobian assembly from layer inputs and backprop signals.
    Jacobian,
    /// The five activations with their derivatives, fused with the bias add.
    Activation,
    /// Bias/derivative products, broadcasts, column sums, residuals, damping.
    Elementwise,
    /// Hadamard assembly of the structured NTK.
    Ntk,
    /// The device-resident first-order inner step: row gathers, loss gradients, the
    /// non-finite flag and the SGD / momentum / Nesterov / Adam updates.
    Optim,
}

impl Family {
    /// Every family, for tests and for compiling everything ahead of use.
    pub const ALL: [Family; 6] = [
        Family::Jvec,
        Family::Jacobian,
        Family::Activation,
        Family::Elementwise,
        Family::Ntk,
        Family::Optim,
    ];

    /// The file stem (`"jvec"` for `kernels/jvec.cu`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Jvec => "jvec",
            Family::Jacobian => "jacobian",
            Family::Activation => "activation",
            Family::Elementwise => "elementwise",
            Family::Ntk => "ntk",
            Family::Optim => "optim",
        }
    }

    /// The CUDA source of the family, without the prelude.
    pub fn source(self) -> &'static str {
        match self {
            Family::Jvec => include_str!("../../../kernels/jvec.cu"),
            Family::Jacobian => include_str!("../../../kernels/jacobian.cu"),
            Family::Activation => include_str!("../../../kernels/activation.cu"),
            Family::Elementwise => include_str!("../../../kernels/elementwise.cu"),
            Family::Ntk => include_str!("../../../kernels/ntk.cu"),
            Family::Optim => include_str!("../../../kernels/optim.cu"),
        }
    }

    /// The full translation unit handed to NVRTC: prelude, then the family.
    pub fn full_source(self) -> String {
        format!("{COMMON}\n{}", self.source())
    }
}

/// What [`compile`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// PTX text (use with a virtual architecture, `compute_XY`).
    Ptx,
    /// A CUBIN for one real architecture (`sm_XY`): loads without a JIT step.
    Cubin,
}

/// Whether the NVRTC library can be loaded (dynamic loading); `Err` says why not.
pub fn nvrtc_available() -> Result<()> {
    // SAFETY: `is_culib_present` only tries to open the shared library by its candidate
    // names; it does not call into it.
    if unsafe { sys::is_culib_present() } {
        Ok(())
    } else {
        Err(Error::Device(
            "NVRTC (libnvrtc) could not be loaded; install the CUDA toolkit or the \
             `nvidia-cuda-nvrtc` wheel and put its lib folder on LD_LIBRARY_PATH"
                .into(),
        ))
    }
}

/// The NVRTC version `(major, minor)`.
///
/// # Errors
/// [`Error::Device`] when NVRTC cannot be loaded.
pub fn nvrtc_version() -> Result<(i32, i32)> {
    nvrtc_available()?;
    let (mut major, mut minor) = (0, 0);
    // SAFETY: the library is present (checked above); both out-pointers are valid locals.
    let status = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    status
        .result()
        .map_err(|e| Error::Device(format!("nvrtcVersion failed: {e:?}")))?;
    Ok((major, minor))
}

/// Compiles `family` for `arch` (`"compute_90"` for PTX, `"sm_90"` for a CUBIN).
///
/// # Errors
/// [`Error::Device`] naming the family and the architecture, with NVRTC's full log when the
/// source does not compile, or when NVRTC cannot be loaded.
pub fn compile(family: Family, arch: &str, output: Output) -> Result<Vec<u8>> {
    compile_source(family.name(), &family.full_source(), arch, output)
}

/// Compiles one CUDA translation unit `source`, called `name` in messages, for `arch`.
///
/// # Errors
/// As [`compile`].
pub fn compile_source(name: &str, source: &str, arch: &str, output: Output) -> Result<Vec<u8>> {
    nvrtc_available()?;
    let src = CString::new(source)
        .map_err(|_| Error::Device(format!("kernel source `{name}` contains a NUL byte")))?;
    let fname = CString::new(format!("{name}.cu"))
        .map_err(|_| Error::Device(format!("kernel name `{name}` contains a NUL byte")))?;
    let prog = result::create_program(&src, Some(&fname)).map_err(|e| {
        Error::Device(format!(
            "NVRTC could not create a program for kernel family `{}`: {e:?}",
            name
        ))
    })?;
    let guard = ProgramGuard(prog);
    let options = vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".to_string(),
        "--fmad=true".to_string(),
        "-lineinfo".to_string(),
    ];
    // SAFETY: `prog` is a live program (owned by `guard`); the options are plain strings.
    let compiled = unsafe { result::compile_program(guard.0, &options) };
    if let Err(e) = compiled {
        // SAFETY: the program is live; getting its log is valid after a failed compile.
        let log = unsafe { result::get_program_log(guard.0) }
            .map(|raw| {
                // SAFETY: NVRTC returns a NUL-terminated log of the size it reported.
                unsafe { CStr::from_ptr(raw.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|e| format!("(no log: {e:?})"));
        return Err(Error::Device(format!(
            "NVRTC failed to compile kernel family `{}` for {arch} ({e:?}); log:\n{log}",
            name
        )));
    }
    match output {
        Output::Ptx => {
            // SAFETY: the program compiled successfully, so its PTX is available.
            let ptx = unsafe { result::get_ptx(guard.0) }
                .map_err(|e| Error::Device(format!("NVRTC gave no PTX for `{}`: {e:?}", name)))?;
            let mut bytes: Vec<u8> = ptx.iter().map(|&c| c as u8).collect();
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            Ok(bytes)
        }
        Output::Cubin => {
            let mut size = 0usize;
            // SAFETY: live, compiled program; `size` is a valid out-pointer.
            unsafe { sys::nvrtcGetCUBINSize(guard.0, &mut size) }
                .result()
                .map_err(|e| {
                    Error::Device(format!(
                        "NVRTC gave no CUBIN for `{}` ({arch}): {e:?}",
                        name
                    ))
                })?;
            let mut cubin = vec![0u8; size];
            // SAFETY: `cubin` has exactly the size NVRTC reported for this program.
            unsafe { sys::nvrtcGetCUBIN(guard.0, cubin.as_mut_ptr().cast()) }
                .result()
                .map_err(|e| {
                    Error::Device(format!(
                        "NVRTC gave no CUBIN for `{}` ({arch}): {e:?}",
                        name
                    ))
                })?;
            Ok(cubin)
        }
    }
}

/// Destroys the NVRTC program when compilation ends, on every path.
struct ProgramGuard(sys::nvrtcProgram);

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is destroyed once, here.
        // A failure to destroy leaks a little host memory and is not worth a panic.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}
