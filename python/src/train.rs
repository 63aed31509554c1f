//! `train`: the iterative-linearisation trainer (the body of `itlin train`) on the embedded
//! MNIST digits, a data directory, or NumPy arrays, returning its evaluations.

use crate::arrays::{Dtype, Scalar, input, out1, shape_str};
use crate::errors::{no_panic, to_py, value_error};
use crate::model::{AnyModel, PyModel, by_dtype};
use faer::Mat;
use itlin::data::{Dataset, Split};
use itlin::train::{
    Control, DataRef, Inner, Loss, Metrics, Observer, Period, Schedule, TrainConfig, Trainer,
};
use itlin::{Activation, Init, Mlp, Model};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Watches a run: keeps every evaluation as JSON, appends it to `metrics.jsonl`, calls the
/// Python callback with it, and checks for Ctrl-C.
struct PyObserver {
    callback: Option<Py<PyAny>>,
    records: Vec<String>,
    file: Option<std::fs::File>,
    file_path: Option<PathBuf>,
    error: Option<PyErr>,
}

impl Observer for PyObserver {
    fn on_step(&mut self, step: u64, _total: u64) {
        if step.is_multiple_of(32)
            && self.error.is_none()
            && let Err(e) = Python::attach(|py| py.check_signals())
        {
            self.error = Some(e);
        }
    }
    fn on_eval(&mut self, m: &Metrics) -> Control {
        if self.error.is_some() {
            return Control::Stop;
        }
        let line = match serde_json::to_string(m) {
            Ok(l) => l,
            Err(e) => {
                self.error = Some(value_error(e.to_string()));
                return Control::Stop;
            }
        };
        if let Some(f) = &mut self.file
            && let Err(e) = writeln!(f, "{line}")
        {
            let path = self.file_path.clone().unwrap_or_default();
            self.error = Some(to_py(itlin::Error::io(path, e)));
            return Control::Stop;
        }
        self.records.push(line.clone());
        let Some(cb) = &self.callback else {
            return Control::Continue;
        };
        let res = Python::attach(|py| -> PyResult<bool> {
            let d = py.import("json")?.call_method1("loads", (line,))?;
            let r = cb.call1(py, (d,))?;
            // `False` (not None) asks to stop
            Ok(!r
                .bind(py)
                .is(pyo3::types::PyBool::new(py, false).to_owned()))
        });
        match res {
            Ok(true) => Control::Continue,
            Ok(false) => Control::Stop,
            Err(e) => {
                self.error = Some(e);
                Control::Stop
            }
        }
    }
}

/// Everything `train` was given, parsed.
struct Args {
    k: Period,
    inner: Inner,
    loss: Loss,
    epochs: f64,
    steps: Option<u64>,
    batch: usize,
    gn_batch: usize,
    weight_decay: f64,
    schedule: Schedule,
    eval_every: Option<u64>,
    probe: usize,
    kernel_distance: bool,
    seed: u64,
    arch: Option<Vec<usize>>,
    activation: Activation,
    n_train: Option<usize>,
    out: Option<PathBuf>,
    force: bool,
}

/// The training configuration for `n` training rows, as `itlin train` derives it.
fn config(a: &Args, n: usize, out: Option<&Path>) -> PyResult<TrainConfig> {
    if a.batch == 0 {
        return Err(value_error("batch must be at least 1"));
    }
    let per_epoch = n.div_ceil(a.batch.min(n).max(1)) as u64;
    let steps = match a.steps {
        Some(0) => return Err(value_error("steps must be at least 1")),
        Some(s) => s,
        None => {
            if !(a.epochs.is_finite() && a.epochs > 0.0) {
                return Err(value_error(format!(
                    "epochs must be positive, got {}",
                    a.epochs
                )));
            }
            ((a.epochs * per_epoch as f64).ceil() as u64).max(1)
        }
    };
    let eval_every = a.eval_every.unwrap_or(per_epoch);
    let mut cfg = TrainConfig::new()
        .with_period(a.k)
        .with_inner(a.inner)
        .with_loss(a.loss)
        .with_weight_decay(a.weight_decay)
        .with_schedule(a.schedule)
        .with_batch(a.batch)
        .with_steps(steps)
        .with_gn_batch(Some(a.gn_batch.min(n)))
        .with_eval_every(eval_every)
        .with_probe(a.probe)
        .with_kernel_distance(a.kernel_distance)
        .with_seed(a.seed);
    if let Some(dir) = out {
        cfg = cfg.with_checkpoint(dir.join("checkpoint.bin"), eval_every);
    }
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

/// A data set from arrays: `x` `(N, d)`, `y` either integer labels `(N,)` or targets `(N, C)`.
fn dataset<T: Scalar>(
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    which: &str,
    classes: Option<usize>,
) -> PyResult<Dataset<T>> {
    let xn = format!("{which} x");
    let xi = crate::arrays::output_of::<T>(x, &xn)?;
    if xi.shape().len() != 2 || xi.shape()[0] == 0 {
        return Err(value_error(format!(
            "{xn} has shape {}, expected (N, d) with N ≥ 1",
            shape_str(xi.shape())
        )));
    }
    xi.finite()?;
    let (n, d) = (xi.shape()[0], xi.shape()[1]);
    let xd = xi.data();
    let xm = Mat::from_fn(n, d, |i, j| xd[i * d + j]);
    let yn = format!("{which} y");
    let ya = crate::arrays::as_ndarray(y, &yn)?;
    let kind: String = numpy::PyUntypedArrayMethods::dtype(&ya)
        .getattr("kind")?
        .extract()?;
    if matches!(kind.as_str(), "i" | "u") {
        let labels: Vec<i64> = ya
            .call_method1("astype", ("int64",))?
            .call_method0("tolist")?
            .extract()
            .map_err(|_| {
                value_error(format!(
                    "{yn}: integer labels must be a 1-D array of shape (N,)"
                ))
            })?;
        if labels.len() != n {
            return Err(value_error(format!(
                "{yn} has {} labels, {xn} has {n} rows",
                labels.len()
            )));
        }
        if let Some(l) = labels.iter().find(|&&l| l < 0 || l > u32::MAX as i64) {
            return Err(value_error(format!(
                "{yn} has the label {l}; labels must be 0, 1, 2, …"
            )));
        }
        let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let c =
            classes.unwrap_or_else(|| labels.iter().max().map_or(1, |&l| l as usize + 1).max(2));
        return Dataset::classification(xm, labels, c).map_err(to_py);
    }
    let yi = crate::arrays::output_of::<T>(&ya.into_any(), &yn)?;
    yi.expect(
        &[Some(n), None],
        &format!("(N, C) with N = {n} (or integer labels of shape (N,))"),
    )?;
    yi.finite()?;
    let c = yi.shape()[1];
    let yd = yi.data();
    Dataset::regression(xm, Mat::from_fn(n, c, |i, j| yd[i * c + j])).map_err(to_py)
}

/// The data: `"mnist"`, a directory, or a tuple `(x, y)` / `(x, y, x_test, y_test)`.
fn load<T: Scalar>(
    data: &Bound<'_, PyAny>,
    a: &Args,
    classes: Option<usize>,
) -> PyResult<(Dataset<T>, Option<Dataset<T>>)> {
    if let Ok(t) = data
        .cast::<PyTuple>()
        .map(|t| t.to_list())
        .or_else(|_| data.cast::<PyList>().cloned())
    {
        return match t.len() {
            2 => Ok((
                dataset(&t.get_item(0)?, &t.get_item(1)?, "train", classes)?,
                None,
            )),
            4 => {
                let train = dataset::<T>(&t.get_item(0)?, &t.get_item(1)?, "train", classes)?;
                let c = train.labels.as_ref().map(|_| train.n_outputs());
                let test = dataset(&t.get_item(2)?, &t.get_item(3)?, "test", classes.or(c))?;
                Ok((train, Some(test)))
            }
            l => Err(value_error(format!(
                "data: a tuple of {l} arrays; expected (x, y) or (x, y, x_test, y_test)"
            ))),
        };
    }
    let spec: PathBuf = data.extract().map_err(|_| {
        value_error("data must be 'mnist', a directory, or a tuple (x, y) / (x, y, x_test, y_test)")
    })?;
    let split: Split<T> = if spec.as_os_str().eq_ignore_ascii_case("mnist") {
        match a.n_train {
            Some(n) => itlin::data::mnist_embedded_split(n),
            None => itlin::data::mnist_embedded(),
        }
        .map_err(to_py)?
    } else {
        if !spec.is_dir() {
            return Err(value_error(format!(
                "data {}: not a directory; pass 'mnist', a directory holding the four IDX files or x_train.npy, y_train.npy, x_test.npy, y_test.npy, or arrays",
                spec.display()
            )));
        }
        let mut s = itlin::data::load_dir(&spec).map_err(to_py)?;
        if let Some(n) = a.n_train {
            if n == 0 || n > s.train.len() {
                return Err(value_error(format!(
                    "n_train {n}: the training set has {} rows",
                    s.train.len()
                )));
            }
            s.train = s.train.head(n);
        }
        s
    };
    Ok((split.train, Some(split.test)))
}

/// Prepares `out`: created if missing; an existing non-empty directory only with `force`.
fn prepare_out(out: &Path, force: bool) -> PyResult<()> {
    if out.exists() {
        if !out.is_dir() {
            return Err(value_error(format!(
                "out {}: not a directory",
                out.display()
            )));
        }
        let non_empty = std::fs::read_dir(out)
            .map_err(|e| to_py(itlin::Error::io(out, e)))?
            .next()
            .is_some();
        if non_empty && !force {
            return Err(value_error(format!(
                "out {}: the directory is not empty; pass force=True to overwrite its run files",
                out.display()
            )));
        }
        for f in [
            "metrics.jsonl",
            "summary.json",
            "theta.npy",
            "checkpoint.bin",
        ] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| to_py(itlin::Error::io(&p, e)))?;
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| to_py(itlin::Error::io(out, e)))
}

/// What one run returns to Python: the evaluations, the summary, and the final θ.
type RunOut = (Vec<String>, String, Py<PyAny>);

#[allow(clippy::too_many_arguments)]
fn fit<T: Scalar, M: Model<T>>(
    py: Python<'_>,
    model: &M,
    theta0: Vec<T>,
    train: &Dataset<T>,
    test: Option<&Dataset<T>>,
    cfg: TrainConfig,
    obs: &mut PyObserver,
    out: Option<&Path>,
) -> PyResult<RunOut> {
    let (report, theta) = py
        .detach(|| {
            no_panic(|| -> itlin::Result<_> {
                let mut trainer = Trainer::new(model, theta0, cfg)?;
                let tr = DataRef::new(train.x.as_ref(), train.y.as_ref(), train.labels.as_deref());
                let te =
                    test.map(|t| DataRef::new(t.x.as_ref(), t.y.as_ref(), t.labels.as_deref()));
                let report = trainer.fit(tr, te, obs)?;
                Ok((report, trainer.theta().to_vec()))
            })
        })?
        .map_err(to_py)?;
    if let Some(e) = obs.error.take() {
        return Err(e);
    }
    let mut summary = report.clone();
    summary.history.clear();
    let summary = serde_json::to_string(&summary).map_err(|e| value_error(e.to_string()))?;
    if let Some(dir) = out {
        let p = dir.join("summary.json");
        std::fs::write(&p, &summary).map_err(|e| to_py(itlin::Error::io(&p, e)))?;
        itlin::data::npy::write_npy(&dir.join("theta.npy"), &[theta.len()], &theta)
            .map_err(to_py)?;
    }
    let records = std::mem::take(&mut obs.records);
    Ok((records, summary, out1(py, theta).into_any().unbind()))
}

fn run_t<T: Scalar>(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    a: &Args,
    net: Option<&AnyModel>,
    theta0: Option<&Bound<'_, PyAny>>,
    callback: Option<Py<PyAny>>,
) -> PyResult<RunOut> {
    let classes = net
        .map(|m| m.n_outputs())
        .or(a.arch.as_ref().and_then(|w| w.last().copied()));
    let (train, test) = load::<T>(data, a, classes)?;
    let (d, c) = (train.n_features(), train.n_outputs());
    if a.loss == Loss::CrossEntropy && !train.is_classification() {
        return Err(value_error(
            "loss='ce' needs class labels; these targets are real-valued, use loss='mse'",
        ));
    }
    let built;
    let model: &AnyModel = match net {
        Some(m) => m,
        None => {
            let arch = a.arch.clone().unwrap_or_else(|| vec![d, 256, c]);
            if arch.len() < 2 || arch[0] != d || arch[arch.len() - 1] != c {
                return Err(value_error(format!(
                    "arch {arch:?}: the data have {d} inputs and {c} outputs, so arch must start with {d} and end with {c}"
                )));
            }
            built = AnyModel::Mlp(Mlp::new(&arch, a.activation).map_err(to_py)?);
            &built
        }
    };
    if model.n_inputs() != d || model.n_outputs() != c {
        return Err(value_error(format!(
            "model {} takes {} inputs and gives {} outputs; the data have {d} and {c}",
            model.describe(),
            model.n_inputs(),
            model.n_outputs()
        )));
    }
    let theta0: Vec<T> = match theta0 {
        Some(t) => {
            let t = input::<T>(t, "theta0", &format!("dtype is {}", T::DTYPE.name()))?;
            let p = model.n_params();
            t.expect(
                &[Some(p)],
                &format!("({p},), the parameters of {}", model.describe()),
            )?;
            t.finite()?;
            t.data().to_vec()
        }
        None => model.init(Init::Standard, a.seed),
    };
    let out = a.out.as_deref();
    if let Some(dir) = out {
        prepare_out(dir, a.force)?;
    }
    let cfg = config(a, train.len(), out)?;
    let file_path = out.map(|d| d.join("metrics.jsonl"));
    let file = match &file_path {
        Some(p) => Some(std::fs::File::create(p).map_err(|e| to_py(itlin::Error::io(p, e)))?),
        None => None,
    };
    let mut obs = PyObserver {
        callback,
        records: Vec::new(),
        file,
        file_path,
        error: None,
    };
    match model {
        AnyModel::Mlp(m) => fit(py, m, theta0, &train, test.as_ref(), cfg, &mut obs, out),
        AnyModel::Network(n) => fit(py, n, theta0, &train, test.as_ref(), cfg, &mut obs, out),
    }
}

fn parse_inner(
    name: &str,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    damping: f64,
    adaptive: bool,
) -> PyResult<Inner> {
    match name.to_ascii_lowercase().as_str() {
        "sgd" => Ok(Inner::Sgd {
            lr,
            momentum,
            nesterov,
        }),
        "adam" => Ok(Inner::adam(lr)),
        "gn" | "gauss-newton" | "gauss_newton" => Ok(Inner::GaussNewton { damping, adaptive }),
        "spectral" => Ok(Inner::Spectral { lr }),
        _ => Err(value_error(format!(
            "inner '{name}': expected 'sgd', 'adam', 'gn' or 'spectral'"
        ))),
    }
}

/// The trainer behind `itlin.train` (see its docstring there): returns the evaluations (one
/// JSON object per line), the summary as JSON, and the final θ.
#[pyfunction]
#[pyo3(signature = (data, k, inner, epochs, out, callback, arch, activation, loss, lr, momentum, nesterov, damping, adaptive, gn_batch, batch, steps, weight_decay, schedule, eval_every, probe, kernel_distance, seed, n_train, dtype, model, theta0, force))]
#[allow(clippy::too_many_arguments)]
pub fn _train(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    k: &Bound<'_, PyAny>,
    inner: &str,
    epochs: f64,
    out: Option<PathBuf>,
    callback: Option<Py<PyAny>>,
    arch: Option<Vec<usize>>,
    activation: &str,
    loss: &str,
    lr: f64,
    momentum: f64,
    nesterov: bool,
    damping: f64,
    adaptive: bool,
    gn_batch: usize,
    batch: usize,
    steps: Option<u64>,
    weight_decay: f64,
    schedule: &str,
    eval_every: Option<u64>,
    probe: usize,
    kernel_distance: bool,
    seed: u64,
    n_train: Option<usize>,
    dtype: &Bound<'_, PyAny>,
    model: Option<PyRef<'_, PyModel>>,
    theta0: Option<&Bound<'_, PyAny>>,
    force: bool,
) -> PyResult<(Py<PyAny>, Py<PyAny>, Py<PyAny>)> {
    let period: Period = if k.is_none() {
        Period::Never
    } else if let Ok(n) = k.extract::<i64>() {
        if n < 1 {
            return Err(value_error(format!(
                "k must be a positive integer or None/'inf', got {n}"
            )));
        }
        Period::Steps(n as u64)
    } else if let Ok(s) = k.extract::<String>() {
        s.parse().map_err(to_py)?
    } else if k.extract::<f64>().is_ok_and(|f| f.is_infinite() && f > 0.0) {
        Period::Never
    } else {
        return Err(value_error("k must be a positive integer or None/'inf'"));
    };
    let callback = callback.filter(|c| !c.is_none(py));
    if let Some(c) = &callback
        && !c.bind(py).is_callable()
    {
        return Err(value_error("callback must be callable or None"));
    }
    let a = Args {
        k: period,
        inner: parse_inner(inner, lr, momentum, nesterov, damping, adaptive)?,
        loss: loss.parse().map_err(to_py)?,
        epochs,
        steps,
        batch,
        gn_batch,
        weight_decay,
        schedule: schedule.parse().map_err(to_py)?,
        eval_every,
        probe,
        kernel_distance,
        seed,
        arch,
        activation: activation.parse().map_err(to_py)?,
        n_train,
        out,
        force,
    };
    let dt = Dtype::parse(dtype)?;
    let net = model.as_ref().map(|m| &m.inner);
    let (records, summary, theta) = by_dtype!(dt, run_t(py, data, &a, net, theta0, callback))?;
    let json = py.import("json")?;
    let list = PyList::empty(py);
    for r in records {
        list.append(json.call_method1("loads", (r,))?)?;
    }
    let summary = json
        .call_method1("loads", (summary,))?
        .cast_into::<PyDict>()?;
    Ok((list.into_any().unbind(), summary.into_any().unbind(), theta))
}
