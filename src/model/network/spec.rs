//! The network spec string: a comma-separated list of layers, e.g.
//! `conv(16,3,pad=1),relu,avgpool(2),conv(32,3,pad=1),relu,avgpool(2),dense(10)`.
//!
//! | item | meaning |
//! |---|---|
//! | `dense(OUT)` | `z = W a + b` on the input flattened in `(c, h, w)` order |
//! | `conv(OUT,K)`, `conv(OUT,K,stride=S,pad=P)` | 2-D cross-correlation, square `K×K` kernel, zero padding `P`, stride `S` (defaults 1 and 0; keyword arguments in any order) |
//! | `avgpool(K)`, `maxpool(K)` | `K×K` windows with stride `K`, a remainder row/column dropped |
//! | `flatten` | `C×H×W → (C·H·W)×1×1` |
//! | `relu`, `tanh`, `gelu`, `softplus`, `identity` | element-wise activations |
//!
//! Whitespace around items and arguments is ignored; names are case-insensitive. The
//! canonical form ([`LayerKind`]'s `Display`) is lowercase without spaces and omits default
//! arguments (`stride=1`, `pad=0`).

use crate::model::Activation;
use crate::{Error, Result};
use std::fmt;

/// What one layer of a [`Network`](super::Network) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `z = W a + b` on the input flattened in `(c, h, w)` order; output `OUT×1×1`.
    Dense {
        /// Output width `OUT`.
        out: usize,
    },
    /// `z[o,y,x] = b[o] + Σ_{i,u,v} W[o,i,u,v] · a[i, y·S+u−P, x·S+v−P]` (zero outside the
    /// input); output `OUT × H' × W'` with `H' = ⌊(H + 2P − K)/S⌋ + 1`.
    Conv {
        /// Output channels `OUT`.
        out: usize,
        /// Kernel size `K` (square).
        kernel: usize,
        /// Stride `S ≥ 1`.
        stride: usize,
        /// Zero padding `P` on every side.
        pad: usize,
    },
    /// Mean over `K×K` windows with stride `K` (remainder dropped).
    AvgPool {
        /// Window size `K`.
        size: usize,
    },
    /// Maximum over `K×K` windows with stride `K` (remainder dropped); the derivative goes to
    /// the first maximal element in row-major window order.
    MaxPool {
        /// Window size `K`.
        size: usize,
    },
    /// `C×H×W → (C·H·W)×1×1` in `(c, h, w)` order (a no-op on the data).
    Flatten,
    /// An element-wise activation `a = φ(z)`.
    Activation(Activation),
}

impl LayerKind {
    /// Whether the layer has parameters (dense and conv).
    pub fn has_params(&self) -> bool {
        matches!(self, LayerKind::Dense { .. } | LayerKind::Conv { .. })
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayerKind::Dense { out } => write!(f, "dense({out})"),
            LayerKind::Conv {
                out,
                kernel,
                stride,
                pad,
            } => {
                write!(f, "conv({out},{kernel}")?;
                if stride != 1 {
                    write!(f, ",stride={stride}")?;
                }
                if pad != 0 {
                    write!(f, ",pad={pad}")?;
                }
                f.write_str(")")
            }
            LayerKind::AvgPool { size } => write!(f, "avgpool({size})"),
            LayerKind::MaxPool { size } => write!(f, "maxpool({size})"),
            LayerKind::Flatten => f.write_str("flatten"),
            LayerKind::Activation(a) => f.write_str(a.name()),
        }
    }
}

/// One parsed item: its kind and the text it was written as (for error messages).
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub kind: LayerKind,
    pub text: String,
}

/// The error for item `index` (0-based here, 1-based in the message) written as `text`.
pub(crate) fn layer_error(index: usize, total: usize, text: &str, msg: impl fmt::Display) -> Error {
    Error::config(format!(
        "network spec, layer {} of {total} `{text}`: {msg}",
        index + 1
    ))
}

/// Splits `spec` at the commas outside parentheses.
fn split_items(spec: &str) -> Result<Vec<String>> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut cur = String::new();
    for ch in spec.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch);
            }
            ')' => {
                if depth == 0 {
                    return Err(Error::config(format!(
                        "network spec `{}`: unbalanced `)`",
                        spec.trim()
                    )));
                }
                depth -= 1;
                cur.push(ch);
            }
            ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
            _ => cur.push(ch),
        }
    }
    if depth != 0 {
        return Err(Error::config(format!(
            "network spec `{}`: unbalanced `(`",
            spec.trim()
        )));
    }
    items.push(cur);
    Ok(items)
}

/// A positive (or, with `allow_zero`, non-negative) decimal integer.
fn number(s: &str, what: &str, allow_zero: bool) -> std::result::Result<usize, String> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} `{s}` is not a whole number"));
    }
    let v: usize = s
        .parse()
        .map_err(|_| format!("{what} `{s}` is too large"))?;
    if v == 0 && !allow_zero {
        return Err(format!("{what} must be at least 1, got 0"));
    }
    Ok(v)
}

/// Parses one item (already trimmed, non-empty).
fn parse_item(text: &str) -> std::result::Result<LayerKind, String> {
    let (name, args) = match text.find('(') {
        Some(open) => {
            if !text.ends_with(')') {
                return Err("text after the closing `)`".into());
            }
            let inner = &text[open + 1..text.len() - 1];
            let args: Vec<&str> = if inner.trim().is_empty() {
                Vec::new()
            } else {
                inner.split(',').map(str::trim).collect()
            };
            (text[..open].trim().to_ascii_lowercase(), Some(args))
        }
        None => (text.to_ascii_lowercase(), None),
    };
    let args_of = |what: &str, n: usize| -> std::result::Result<Vec<&str>, String> {
        match &args {
            None => Err(format!("{what} needs arguments: {what}(...)")),
            Some(a) if a.len() != n => Err(format!(
                "{what} takes {n} argument{}, got {}",
                if n == 1 { "" } else { "s" },
                a.len()
            )),
            Some(a) => Ok(a.clone()),
        }
    };
    match name.as_str() {
        "dense" => {
            let a = args_of("dense", 1)?;
            Ok(LayerKind::Dense {
                out: number(a[0], "output width", false)?,
            })
        }
        "avgpool" | "maxpool" => {
            let a = args_of(&name, 1)?;
            let size = number(a[0], "window size", false)?;
            Ok(if name == "avgpool" {
                LayerKind::AvgPool { size }
            } else {
                LayerKind::MaxPool { size }
            })
        }
        "conv" => {
            let a = match &args {
                None => return Err("conv needs arguments: conv(OUT,K[,stride=S][,pad=P])".into()),
                Some(a) => a.clone(),
            };
            if a.len() < 2 {
                return Err(format!(
                    "conv takes conv(OUT,K[,stride=S][,pad=P]), got {} argument{}",
                    a.len(),
                    if a.len() == 1 { "" } else { "s" }
                ));
            }
            let out = number(a[0], "output channels", false)?;
            let kernel = number(a[1], "kernel size", false)?;
            let (mut stride, mut pad) = (None, None);
            for arg in &a[2..] {
                let Some((key, value)) = arg.split_once('=') else {
                    return Err(format!(
                        "argument `{arg}`: only OUT and K are positional; write stride=S or pad=P"
                    ));
                };
                let key = key.trim().to_ascii_lowercase();
                let slot = match key.as_str() {
                    "stride" => &mut stride,
                    "pad" => &mut pad,
                    _ => {
                        return Err(format!(
                            "unknown argument `{}`; conv takes stride=S and pad=P",
                            key
                        ));
                    }
                };
                if slot.is_some() {
                    return Err(format!("argument `{key}` given twice"));
                }
                *slot = Some(number(value, &key, key == "pad")?);
            }
            Ok(LayerKind::Conv {
                out,
                kernel,
                stride: stride.unwrap_or(1),
                pad: pad.unwrap_or(0),
            })
        }
        "flatten" | "relu" | "tanh" | "gelu" | "softplus" | "identity" => {
            if let Some(a) = &args
                && !a.is_empty()
            {
                return Err(format!("{name} takes no arguments"));
            }
            if name == "flatten" {
                Ok(LayerKind::Flatten)
            } else {
                Ok(LayerKind::Activation(
                    name.parse::<Activation>().map_err(|e| e.to_string())?,
                ))
            }
        }
        _ => Err(format!(
            "unknown layer `{name}`; expected dense, conv, avgpool, maxpool, flatten, relu, tanh, gelu, softplus or identity"
        )),
    }
}

/// Parses a spec string into its items.
///
/// # Errors
/// [`Error::Config`] naming the layer (1-based index and its text) for an empty item, an
/// unknown layer, or a bad argument; a message for an empty spec or unbalanced parentheses.
pub(crate) fn parse(spec: &str) -> Result<Vec<Item>> {
    if spec.trim().is_empty() {
        return Err(Error::config(
            "network spec is empty; expected layers such as `dense(128),relu,dense(10)`",
        ));
    }
    let raw = split_items(spec)?;
    let total = raw.len();
    raw.iter()
        .enumerate()
        .map(|(i, r)| {
            let text = r.trim();
            if text.is_empty() {
                return Err(layer_error(
                    i,
                    total,
                    text,
                    "empty item (two commas in a row, or a comma at an end)",
                ));
            }
            parse_item(text)
                .map(|kind| Item {
                    kind,
                    text: text.to_string(),
                })
                .map_err(|m| layer_error(i, total, text, m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let items = parse(" conv( 16 , 3 , pad = 1 ) ,RELU, avgpool(2),conv(8,5,pad=0,stride=2),maxpool(3),flatten,dense(10),tanh").unwrap();
        let s: Vec<String> = items.iter().map(|i| i.kind.to_string()).collect();
        assert_eq!(
            s.join(","),
            "conv(16,3,pad=1),relu,avgpool(2),conv(8,5,stride=2),maxpool(3),flatten,dense(10),tanh"
        );
    }

    #[test]
    fn errors_name_the_layer() {
        for (spec, needle) in [
            ("dense(10),foo", "layer 2 of 2 `foo`"),
            ("dense(0)", "at least 1"),
            ("dense(-3)", "not a whole number"),
            ("dense", "needs arguments"),
            ("dense(3,4)", "takes 1 argument"),
            ("conv(4,3,dilation=2)", "unknown argument `dilation`"),
            ("conv(4,3,stride=0)", "stride must be at least 1"),
            ("conv(4,3,1)", "only OUT and K are positional"),
            ("conv(4,3,pad=1,pad=2)", "given twice"),
            ("relu(2)", "takes no arguments"),
            ("dense(3),,dense(2)", "layer 2 of 3"),
            ("dense(3)x", "after the closing"),
            ("densely(3)", "unknown layer"),
            ("dense(3", "unbalanced"),
        ] {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(!e.contains('\n'), "{spec}: {e}");
        }
        assert!(parse("  ").is_err());
    }
}
