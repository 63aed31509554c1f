//! Where numeric work runs: [`Device`], parsed from the CLI's `--device cpu|cuda`.

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The compute device for models, linearisations and solvers.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU: SIMD kernels and faer, parallel with rayon.
    #[default]
    Cpu,
    /// A CUDA GPU (needs the `cuda` cargo feature and a driver at run time).
    Cuda,
}

impl Device {
    /// Both devices, in declaration order.
    pub const ALL: [Device; 2] = [Device::Cpu, Device::Cuda];

    /// The lowercase name used by the CLI and in run configs.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }

    /// Whether this build can use the device at all (`Cuda` needs the `cuda` feature; a GPU
    /// is still needed at run time).
    pub fn compiled_in(self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda => cfg!(feature = "cuda"),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Device {
    type Err = Error;
    /// Parses `cpu` or `cuda` (any case; `gpu` is accepted for `cuda`).
    ///
    /// # Errors
    /// [`Error::Config`] for any other name, or for `cuda` in a build without the `cuda`
    /// feature.
    fn from_str(s: &str) -> Result<Self> {
        let d = match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Device::Cpu,
            "cuda" | "gpu" => Device::Cuda,
            _ => {
                return Err(Error::config(format!(
                    "unknown device '{s}'; expected cpu or cuda"
                )));
            }
        };
        if !d.compiled_in() {
            return Err(Error::config(
                "--device cuda needs itlin built with the `cuda` feature \
                 (cargo build --release --features cuda)",
            ));
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        assert!("tpu".parse::<Device>().is_err());
        let cuda = "cuda".parse::<Device>();
        assert_eq!(cuda.is_ok(), cfg!(feature = "cuda"));
        for d in Device::ALL {
            if d.compiled_in() {
                assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
            }
        }
    }
}
