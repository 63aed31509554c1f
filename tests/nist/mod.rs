//! The NIST StRD nonlinear regression problems as [`LeastSquares`] problems: every model
//! hand-coded with its exact analytic Jacobian, and a loader for the vendored JSON file
//! `tests/data/nist-strd/nist_strd_lower_average.json` (public-domain data of the US National
//! Institute of Standards and Technology, <https://www.itl.nist.gov/div898/strd/nls/>; see
//! `tests/data/nist-strd/README.md`).
//!
//! Residuals are `rᵢ = f(xᵢ; b) − yᵢ` (Nelson: `f(xᵢ; b) − log yᵢ`, NIST's response).
//! Models of all 26 problems are here, so a file with the higher-difficulty problems in the
//! same format runs too (`ITLIN_NIST_FILE=path`).

#![allow(dead_code)]

use faer::MatMut;
use itlin::solve::LeastSquares;
use serde_json::Value;
use std::f64::consts::PI;

/// One model family; the same family serves several problems.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Model {
    /// `b1 (1 − exp(−b2 x))` (Misra1a, BoxBOD).
    ExpRise,
    /// `exp(−b1 x) / (b2 + b3 x)` (Chwirut1, Chwirut2).
    Chwirut,
    /// `Σₖ b₂ₖ₋₁ exp(−b₂ₖ x)`, three terms (Lanczos1–3).
    Lanczos,
    /// `b1 exp(−b2 x) + b3 exp(−(x−b4)²/b5²) + b6 exp(−(x−b7)²/b8²)` (Gauss1–3).
    Gauss,
    /// `b1 x^b2` (DanWood).
    Power,
    /// `b1 (1 − (1 + b2 x / 2)^−2)` (Misra1b).
    Misra1b,
    /// `(b1 + b2 x + b3 x²) / (1 + b4 x + b5 x²)` (Kirby2).
    Rational22,
    /// `(b1 + b2 x + b3 x² + b4 x³) / (1 + b5 x + b6 x² + b7 x³)` (Hahn1, Thurber).
    Rational33,
    /// `b1 − b2 x1 exp(−b3 x2)` for `log y` (Nelson).
    Nelson,
    /// `b1 + b2 exp(−x b4) + b3 exp(−x b5)` (MGH17).
    Osborne1,
    /// `b1 (1 − (1 + 2 b2 x)^−½)` (Misra1c).
    Misra1c,
    /// `b1 b2 x / (1 + b2 x)` (Misra1d).
    Misra1d,
    /// `b1 − b2 x − atan(b3 / (x − b4)) / π` (Roszman1).
    Roszman,
    /// `b1 + b2 cos(2πx/12) + b3 sin(2πx/12) + b5 cos(2πx/b4) + b6 sin(2πx/b4)
    ///  + b8 cos(2πx/b7) + b9 sin(2πx/b7)` (ENSO).
    Enso,
    /// `b1 (x² + x b2) / (x² + x b3 + b4)` (MGH09).
    Kowalik,
    /// `b1 / (1 + exp(b2 − b3 x))` (Rat42).
    Rat42,
    /// `b1 exp(b2 / (x + b3))` (MGH10).
    Meyer,
    /// `(b1 / b2) exp(−½ ((x − b3) / b2)²)` (Eckerle4).
    Eckerle,
    /// `b1 / (1 + exp(b2 − b3 x))^(1/b4)` (Rat43).
    Rat43,
    /// `b1 (b2 + x)^(−1/b3)` (Bennett5).
    Bennett,
}

impl Model {
    /// The model of a NIST problem, by the problem's name.
    pub fn of(name: &str) -> Option<Model> {
        Some(match name {
            "Misra1a" | "BoxBOD" => Model::ExpRise,
            "Chwirut1" | "Chwirut2" => Model::Chwirut,
            "Lanczos1" | "Lanczos2" | "Lanczos3" => Model::Lanczos,
            "Gauss1" | "Gauss2" | "Gauss3" => Model::Gauss,
            "DanWood" => Model::Power,
            "Misra1b" => Model::Misra1b,
            "Kirby2" => Model::Rational22,
            "Hahn1" | "Thurber" => Model::Rational33,
            "Nelson" => Model::Nelson,
            "MGH17" => Model::Osborne1,
            "Misra1c" => Model::Misra1c,
            "Misra1d" => Model::Misra1d,
            "Roszman1" => Model::Roszman,
            "ENSO" => Model::Enso,
            "MGH09" => Model::Kowalik,
            "Rat42" => Model::Rat42,
            "MGH10" => Model::Meyer,
            "Eckerle4" => Model::Eckerle,
            "Rat43" => Model::Rat43,
            "Bennett5" => Model::Bennett,
            _ => return None,
        })
    }

    /// `f(x; b)`, and `∂f/∂b` into `g` (length `n`).
    pub fn eval(self, b: &[f64], x: &[f64], g: &mut [f64]) -> f64 {
        let t = x[0];
        match self {
            Model::ExpRise => {
                let e = (-b[1] * t).exp();
                g[0] = 1.0 - e;
                g[1] = b[0] * t * e;
                b[0] * (1.0 - e)
            }
            Model::Chwirut => {
                let d = b[1] + b[2] * t;
                let f = (-b[0] * t).exp() / d;
                g[0] = -t * f;
                g[1] = -f / d;
                g[2] = -t * f / d;
                f
            }
            Model::Lanczos => {
                let mut f = 0.0;
                for k in 0..3 {
                    let e = (-b[2 * k + 1] * t).exp();
                    g[2 * k] = e;
                    g[2 * k + 1] = -t * b[2 * k] * e;
                    f += b[2 * k] * e;
                }
                f
            }
            Model::Gauss => {
                let e = (-b[1] * t).exp();
                g[0] = e;
                g[1] = -t * b[0] * e;
                let mut f = b[0] * e;
                for k in [2, 5] {
                    let (a, c, w) = (b[k], b[k + 1], b[k + 2]);
                    let u = t - c;
                    let gk = (-(u * u) / (w * w)).exp();
                    g[k] = gk;
                    g[k + 1] = a * gk * 2.0 * u / (w * w);
                    g[k + 2] = a * gk * 2.0 * u * u / (w * w * w);
                    f += a * gk;
                }
                f
            }
            Model::Power => {
                let p = t.powf(b[1]);
                g[0] = p;
                g[1] = b[0] * p * t.ln();
                b[0] * p
            }
            Model::Misra1b => {
                let u = 1.0 + b[1] * t / 2.0;
                g[0] = 1.0 - u.powi(-2);
                g[1] = b[0] * t * u.powi(-3);
                b[0] * (1.0 - u.powi(-2))
            }
            Model::Rational22 | Model::Rational33 => {
                // Numerator degree d, denominator degree d: b[0..=d] and b[d+1..2d+1].
                let d = if self == Model::Rational22 { 2 } else { 3 };
                let (mut num, mut den, mut p) = (0.0, 1.0, 1.0);
                for k in 0..=d {
                    num += b[k] * p;
                    if k > 0 {
                        den += b[d + k] * p;
                    }
                    p *= t;
                }
                let f = num / den;
                let mut p = 1.0;
                for k in 0..=d {
                    g[k] = p / den;
                    if k > 0 {
                        g[d + k] = -f * p / den;
                    }
                    p *= t;
                }
                f
            }
            Model::Nelson => {
                let (x1, x2) = (x[0], x[1]);
                let e = (-b[2] * x2).exp();
                g[0] = 1.0;
                g[1] = -x1 * e;
                g[2] = b[1] * x1 * x2 * e;
                b[0] - b[1] * x1 * e
            }
            Model::Osborne1 => {
                let (e4, e5) = ((-t * b[3]).exp(), (-t * b[4]).exp());
                g[0] = 1.0;
                g[1] = e4;
                g[2] = e5;
                g[3] = -t * b[1] * e4;
                g[4] = -t * b[2] * e5;
                b[0] + b[1] * e4 + b[2] * e5
            }
            Model::Misra1c => {
                let u = 1.0 + 2.0 * b[1] * t;
                g[0] = 1.0 - u.powf(-0.5);
                g[1] = b[0] * t * u.powf(-1.5);
                b[0] * (1.0 - u.powf(-0.5))
            }
            Model::Misra1d => {
                let u = 1.0 + b[1] * t;
                g[0] = b[1] * t / u;
                g[1] = b[0] * t / (u * u);
                b[0] * b[1] * t / u
            }
            Model::Roszman => {
                let s = t - b[3];
                let q = b[2] / s;
                let c = 1.0 / (PI * (1.0 + q * q));
                g[0] = 1.0;
                g[1] = -t;
                g[2] = -c / s;
                g[3] = -c * b[2] / (s * s);
                b[0] - b[1] * t - q.atan() / PI
            }
            Model::Enso => {
                let w = 2.0 * PI * t / 12.0;
                g[0] = 1.0;
                g[1] = w.cos();
                g[2] = w.sin();
                let mut f = b[0] + b[1] * w.cos() + b[2] * w.sin();
                for k in [3, 6] {
                    let (per, cb, sb) = (b[k], b[k + 1], b[k + 2]);
                    let phi = 2.0 * PI * t / per;
                    let (s, c) = phi.sin_cos();
                    g[k + 1] = c;
                    g[k + 2] = s;
                    // ∂φ/∂period = −φ / period.
                    g[k] = (-cb * s + sb * c) * (-phi / per);
                    f += cb * c + sb * s;
                }
                f
            }
            Model::Kowalik => {
                let num = t * t + t * b[1];
                let den = t * t + t * b[2] + b[3];
                g[0] = num / den;
                g[1] = b[0] * t / den;
                g[2] = -b[0] * num * t / (den * den);
                g[3] = -b[0] * num / (den * den);
                b[0] * num / den
            }
            Model::Rat42 => {
                let e = (b[1] - b[2] * t).exp();
                let u = 1.0 + e;
                g[0] = 1.0 / u;
                g[1] = -b[0] * e / (u * u);
                g[2] = b[0] * t * e / (u * u);
                b[0] / u
            }
            Model::Meyer => {
                let s = t + b[2];
                let e = (b[1] / s).exp();
                g[0] = e;
                g[1] = b[0] * e / s;
                g[2] = -b[0] * e * b[1] / (s * s);
                b[0] * e
            }
            Model::Eckerle => {
                let z = (t - b[2]) / b[1];
                let e = (-0.5 * z * z).exp();
                g[0] = e / b[1];
                g[1] = b[0] * e / (b[1] * b[1]) * (z * z - 1.0);
                g[2] = b[0] * e * z / (b[1] * b[1]);
                b[0] / b[1] * e
            }
            Model::Rat43 => {
                let e = (b[1] - b[2] * t).exp();
                let u = 1.0 + e;
                let p = u.powf(-1.0 / b[3]);
                let dp_du = -p / (b[3] * u);
                g[0] = p;
                g[1] = b[0] * dp_du * e;
                g[2] = -b[0] * dp_du * e * t;
                g[3] = b[0] * p * u.ln() / (b[3] * b[3]);
                b[0] * p
            }
            Model::Bennett => {
                let u = b[1] + t;
                let p = u.powf(-1.0 / b[2]);
                g[0] = p;
                g[1] = -b[0] * p / (b[2] * u);
                g[2] = b[0] * p * u.ln() / (b[2] * b[2]);
                b[0] * p
            }
        }
    }
}

/// One NIST problem: data, starting points and certified values.
#[derive(Clone, Debug)]
pub struct Problem {
    pub name: String,
    pub difficulty: String,
    pub model: Model,
    /// Predictor rows (one or two entries each).
    pub x: Vec<Vec<f64>>,
    /// Response, already transformed (`log y` for Nelson).
    pub y: Vec<f64>,
    pub starts: [Vec<f64>; 2],
    pub certified: Vec<f64>,
    pub certified_rss: f64,
}

impl LeastSquares<f64> for Problem {
    fn n_params(&self) -> usize {
        self.certified.len()
    }
    fn n_residuals(&self) -> usize {
        self.y.len()
    }
    fn residuals(&self, b: &[f64], r: &mut [f64]) {
        let mut g = vec![0.0; b.len()];
        for ((ri, x), y) in r.iter_mut().zip(&self.x).zip(&self.y) {
            *ri = self.model.eval(b, x, &mut g) - y;
        }
    }
    fn jacobian(&self, b: &[f64], mut j: MatMut<'_, f64>) {
        let mut g = vec![0.0; b.len()];
        for (i, x) in self.x.iter().enumerate() {
            self.model.eval(b, x, &mut g);
            for (k, gk) in g.iter().enumerate() {
                j[(i, k)] = *gk;
            }
        }
    }
}

impl Problem {
    /// `max_k |b_k − c_k| / |c_k|`, the largest relative error against the certified values.
    pub fn max_relative_error(&self, b: &[f64]) -> f64 {
        b.iter()
            .zip(&self.certified)
            .map(|(v, c)| {
                let e = ((v - c) / c).abs();
                if e.is_nan() { f64::INFINITY } else { e }
            })
            .fold(0.0, f64::max)
    }
}

fn floats(v: &Value, what: &str) -> Result<Vec<f64>, String> {
    v.as_array()
        .ok_or(format!("{what}: not an array"))?
        .iter()
        .map(|e| e.as_f64().ok_or(format!("{what}: not a number")))
        .collect()
}

/// Parses a file in the vendored format (a JSON array of problems).
pub fn parse(text: &str) -> Result<Vec<Problem>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for p in v.as_array().ok_or("not a JSON array")? {
        let name = p["name"]
            .as_str()
            .ok_or("a problem without a name")?
            .to_string();
        let model = Model::of(&name).ok_or(format!("{name}: no model for this problem"))?;
        let x = p["x"]
            .as_array()
            .ok_or(format!("{name}: x is not an array"))?
            .iter()
            .map(|row| match row.as_f64() {
                Some(t) => Ok(vec![t]),
                None => floats(row, &name),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut y = floats(&p["y"], &name)?;
        match p["response"].as_str() {
            Some("y") | None => {}
            Some("log(y)") => y.iter_mut().for_each(|v| *v = v.ln()),
            Some(o) => return Err(format!("{name}: unknown response {o}")),
        }
        if x.len() != y.len() {
            return Err(format!("{name}: {} x rows but {} y", x.len(), y.len()));
        }
        out.push(Problem {
            difficulty: p["difficulty"].as_str().unwrap_or("").to_string(),
            model,
            x,
            y,
            starts: [floats(&p["start1"], &name)?, floats(&p["start2"], &name)?],
            certified: floats(&p["certified_params"], &name)?,
            certified_rss: p["certified_rss"]
                .as_f64()
                .ok_or(format!("{name}: no RSS"))?,
            name,
        });
    }
    Ok(out)
}

/// The 18 lower- and average-difficulty problems vendored with the crate, or the file named
/// by `ITLIN_NIST_FILE` when that is set.
pub fn problems() -> Vec<Problem> {
    match std::env::var("ITLIN_NIST_FILE") {
        Ok(path) => {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            parse(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        }
        Err(_) => parse(include_str!(
            "../data/nist-strd/nist_strd_lower_average.json"
        ))
        .expect("the vendored NIST file parses"),
    }
}
