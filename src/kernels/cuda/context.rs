//! [`CudaBackend`]: one CUDA context and stream, its cuBLAS and cuSOLVER handles, and the
//! cache of compiled kernel modules.

use super::nvrtc::{self, Family, Output};
use crate::{Error, Result};
use cudarc::cublas::CudaBlas;
use cudarc::cusolver::DnHandle;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
    DeviceRepr, ValidAsZeroBits,
};
use cudarc::nvrtc::Ptx;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Maps any CUDA library error to [`Error::Device`], saying what was being done.
pub(crate) fn dev_err<E: Debug>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Device(format!("{what}: {e:?}"))
}

/// A CUDA device ready for the crate's kernels: context, one stream (all work is ordered on
/// it), cuBLAS and cuSOLVER handles bound to that stream, and the kernel modules, each
/// compiled by NVRTC once for the device's compute capability (`sm_XY`) and then cached.
pub struct CudaBackend {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    solver: DnHandle,
    arch: String,
    modules: Mutex<HashMap<Family, Arc<CudaModule>>>,
    functions: Mutex<HashMap<String, CudaFunction>>,
    poison: AtomicBool,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("ordinal", &self.ctx.ordinal())
            .field("arch", &self.arch)
            .finish_non_exhaustive()
    }
}

/// The driver cannot allocate zero bytes; an empty batch or model is a usage error here.
fn empty_buffer() -> Error {
    Error::Device("zero-length device buffers are not supported (empty batch or model?)".into())
}

/// Checks that a CUDA library can be opened, without calling into it (cudarc panics on the
/// first call into a library it cannot load).
fn require_lib(present: bool, lib: &str, hint: &str) -> Result<()> {
    if present {
        Ok(())
    } else {
        Err(Error::Device(format!(
            "the CUDA library {lib} could not be loaded ({hint}); \
             put its folder on LD_LIBRARY_PATH"
        )))
    }
}

impl CudaBackend {
    /// Opens device 0. See [`with_ordinal`](Self::with_ordinal).
    ///
    /// # Errors
    /// As [`with_ordinal`](Self::with_ordinal).
    pub fn new() -> Result<Self> {
        Self::with_ordinal(0)
    }

    /// Opens device `ordinal`: loads the driver, cuBLAS, cuSOLVER and NVRTC libraries
    /// (dynamically), creates the context, a stream and the library handles.
    ///
    /// # Errors
    /// [`Error::Device`] with a one-line reason when a library is missing, there is no such
    /// device, or the driver refuses (never a panic).
    pub fn with_ordinal(ordinal: usize) -> Result<Self> {
        // SAFETY: `is_culib_present` only tries to dlopen candidate file names.
        let cuda = unsafe { cudarc::driver::sys::is_culib_present() };
        require_lib(cuda, "libcuda", "no NVIDIA driver")?;
        // SAFETY: as above.
        let cublas = unsafe { cudarc::cublas::sys::is_culib_present() };
        require_lib(cublas, "libcublas", "CUDA toolkit or nvidia-cublas wheel")?;
        // SAFETY: as above.
        let cublaslt = unsafe { cudarc::cublaslt::sys::is_culib_present() };
        require_lib(
            cublaslt,
            "libcublasLt",
            "CUDA toolkit or nvidia-cublas wheel",
        )?;
        // SAFETY: as above.
        let cusolver = unsafe { cudarc::cusolver::sys::is_culib_present() };
        require_lib(
            cusolver,
            "libcusolver",
            "CUDA toolkit or nvidia-cusolver wheel",
        )?;
        nvrtc::nvrtc_available()?;
        // A library that opens but lacks a symbol makes cudarc panic: turn that into an error.
        let opened = std::panic::catch_unwind(|| -> Result<Self> {
            let count = CudaContext::device_count().map_err(dev_err("cuDeviceGetCount"))?;
            if count <= 0 || ordinal >= count as usize {
                return Err(Error::Device(format!(
                    "no CUDA device with ordinal {ordinal} (the driver sees {count})"
                )));
            }
            let ctx = CudaContext::new(ordinal).map_err(dev_err("creating the CUDA context"))?;
            // All work goes to one stream, so cudarc's per-buffer event tracking only costs.
            // SAFETY: no other stream of this context ever touches the buffers we allocate.
            unsafe { ctx.disable_event_tracking() };
            let (major, minor) = ctx
                .compute_capability()
                .map_err(dev_err("reading the compute capability"))?;
            let stream = ctx.new_stream().map_err(dev_err("creating a stream"))?;
            let blas =
                CudaBlas::new(stream.clone()).map_err(dev_err("creating a cuBLAS handle"))?;
            let solver =
                DnHandle::new(stream.clone()).map_err(dev_err("creating a cuSOLVER handle"))?;
            Ok(Self {
                ctx,
                stream,
                blas,
                solver,
                arch: format!("sm_{major}{minor}"),
                modules: Mutex::new(HashMap::new()),
                functions: Mutex::new(HashMap::new()),
                poison: AtomicBool::new(false),
            })
        });
        opened.unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown failure".into());
            Err(Error::Device(format!(
                "opening CUDA device {ordinal}: {msg}"
            )))
        })
    }

    /// The device name as the driver reports it.
    ///
    /// # Errors
    /// [`Error::Device`] if the driver call fails.
    pub fn device_name(&self) -> Result<String> {
        self.ctx.name().map_err(dev_err("cuDeviceGetName"))
    }

    /// The real architecture the kernels are compiled for, e.g. `"sm_90"`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The CUDA context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream every operation of this backend is ordered on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The cuBLAS handle (bound to [`stream`](Self::stream)).
    pub fn blas(&self) -> &CudaBlas {
        &self.blas
    }

    /// The cuSOLVER dense handle (bound to [`stream`](Self::stream)).
    pub fn solver(&self) -> &DnHandle {
        &self.solver
    }

    /// Compiles (first use) or fetches (later) the module of `family`.
    ///
    /// # Errors
    /// [`Error::Device`] with the family name and NVRTC's full log if it does not compile, or
    /// the driver message if the module does not load.
    pub fn module(&self, family: Family) -> Result<Arc<CudaModule>> {
        let mut cache = self
            .modules
            .lock()
            .map_err(|_| Error::Device("the kernel module cache was poisoned".into()))?;
        if let Some(m) = cache.get(&family) {
            return Ok(m.clone());
        }
        let cubin = nvrtc::compile(family, &self.arch, Output::Cubin)?;
        let module = self.ctx.load_module(Ptx::from_binary(cubin)).map_err(|e| {
            Error::Device(format!(
                "loading kernel family `{}` ({}): {e:?}",
                family.name(),
                self.arch
            ))
        })?;
        cache.insert(family, module.clone());
        Ok(module)
    }

    /// Compiles every kernel family now (otherwise each compiles on first use).
    ///
    /// # Errors
    /// As [`module`](Self::module).
    pub fn warm_up(&self) -> Result<()> {
        for f in Family::ALL {
            self.module(f)?;
        }
        Ok(())
    }

    /// The entry point `name` of `family`.
    pub(crate) fn function(&self, family: Family, name: &str) -> Result<CudaFunction> {
        if let Some(f) = self
            .functions
            .lock()
            .ok()
            .and_then(|c| c.get(name).cloned())
        {
            return Ok(f);
        }
        let f = self.module(family)?.load_function(name).map_err(|e| {
            Error::Device(format!(
                "kernel `{name}` not found in family `{}`: {e:?}",
                family.name()
            ))
        })?;
        if let Ok(mut c) = self.functions.lock() {
            c.insert(name.to_string(), f.clone());
        }
        Ok(f)
    }

    /// Copies a host slice to a new device buffer.
    ///
    /// # Errors
    /// [`Error::Device`] if allocation or the copy fails, or `host` is empty.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        if host.is_empty() {
            return self
                .stream
                .null()
                .map_err(dev_err("allocating an empty buffer"));
        }
        self.stream
            .clone_htod(host)
            .map_err(dev_err("copying host to device"))
    }

    /// Copies a device buffer (or view) to a new host vector (waits for the stream).
    ///
    /// # Errors
    /// [`Error::Device`] if the copy fails (including an earlier asynchronous kernel error).
    pub fn download<T: DeviceRepr, S: DevicePtr<T>>(&self, dev: &S) -> Result<Vec<T>> {
        if dev.len() == 0 {
            return Ok(Vec::new());
        }
        self.stream
            .clone_dtoh(dev)
            .map_err(dev_err("copying device to host"))
    }

    /// A new device buffer of `len` zeros.
    ///
    /// # Errors
    /// [`Error::Device`] if allocation fails (out of device memory) or `len` is 0.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, len: usize) -> Result<CudaSlice<T>> {
        if len == 0 {
            return Err(empty_buffer());
        }
        self.stream.alloc_zeros(len).map_err(|e| {
            Error::Device(format!(
                "allocating {len} elements ({:.3} GiB) on the device: {e:?}",
                (len * std::mem::size_of::<T>()) as f64 / (1u64 << 30) as f64
            ))
        })
    }

    /// A new device buffer of `len` elements with unspecified contents (every kernel of the
    /// crate writes all of its output).
    pub(crate) fn alloc_uninit<T: DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        if len == 0 {
            return self
                .stream
                .null()
                .map_err(dev_err("allocating an empty buffer"));
        }
        // SAFETY: the buffer is only handed to kernels / library calls that write it before
        // anything reads it (documented at each call site), or poisoned just below.
        let mut buf = unsafe { self.stream.alloc::<T>(len) }.map_err(|e| {
            Error::Device(format!(
                "allocating {len} elements ({:.3} GiB) on the device: {e:?}",
                (len * std::mem::size_of::<T>()) as f64 / (1u64 << 30) as f64
            ))
        })?;
        if self.poison.load(Ordering::Relaxed) {
            let bytes = len * std::mem::size_of::<T>();
            let (ptr, _sync) = buf.device_ptr_mut(&self.stream);
            // SAFETY: `ptr` addresses exactly `bytes` bytes of the new allocation, and the
            // memset is ordered on the stream before any later use of the buffer.
            unsafe {
                cudarc::driver::result::memset_d8_async(ptr, 0xFF, bytes, self.stream.cu_stream())
            }
            .map_err(dev_err("poisoning a new buffer"))?;
        }
        Ok(buf)
    }

    /// When on, every buffer the backend allocates for a result is first filled with NaN
    /// (all bits set), so a test can prove that every element of an output was written.
    /// Off by default (it costs one memset per allocation).
    pub fn set_poison(&self, on: bool) {
        self.poison.store(on, Ordering::Relaxed);
    }

    /// Waits for all work queued on the stream; reports asynchronous kernel errors.
    ///
    /// # Errors
    /// [`Error::Device`] with the driver message.
    pub fn synchronize(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(dev_err("synchronising the stream"))
    }

    /// Free and total device memory in bytes.
    ///
    /// # Errors
    /// [`Error::Device`] if the driver call fails.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.ctx.mem_get_info().map_err(dev_err("cuMemGetInfo"))
    }

    /// Number of streaming multiprocessors.
    pub(crate) fn sm_count(&self) -> usize {
        use cudarc::driver::sys::CUdevice_attribute;
        self.ctx
            .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
            .map(|v| v.max(1) as usize)
            .unwrap_or(108)
    }
}
