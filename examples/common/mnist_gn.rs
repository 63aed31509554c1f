//! What the large-N Gauss-Newton examples share: their `key=value` arguments and the
//! problem (the first N embedded MNIST digits, one-hot targets, an MLP at its
//! initialisation).

use faer::Mat;

/// The command line: a leading number `N` and `key=value` options.
pub struct Args(Vec<String>);

impl Args {
    /// The process's arguments.
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }
    /// The value of `key=value`, if given.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{key}=")).map(str::to_string))
    }
    /// The value of `key=value` parsed, or `default`.
    ///
    /// # Panics
    /// If the value does not parse.
    pub fn parse_or<V: std::str::FromStr>(&self, key: &str, default: V) -> V {
        self.get(key).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{key}={v}: not a valid value"))
        })
    }
    /// Whether the bare word `flag` was given.
    pub fn has(&self, flag: &str) -> bool {
        self.0.iter().any(|a| a == flag)
    }
    /// `N`: the first number (default 1000, at most the 10,000 embedded digits).
    pub fn n(&self) -> usize {
        self.0
            .iter()
            .find_map(|a| a.parse().ok())
            .unwrap_or(1000)
            .min(10_000)
    }
    /// `arch=a,b,c` (default 784,256,10).
    pub fn widths(&self) -> Vec<usize> {
        self.get("arch").map_or(vec![784, 256, 10], |v| {
            v.split(',')
                .map(|w| w.parse().expect("arch=a,b,c"))
                .collect()
        })
    }
}

/// The first `n` embedded digits (the training set, then the test set) as `X` (`n × d`) and
/// one-hot `Y` (`n × c`).
///
/// # Panics
/// If the embedded data cannot be read.
pub fn digits(n: usize, d: usize, c: usize) -> (Mat<f64>, Mat<f64>) {
    let split = itlin::data::mnist_embedded_split::<f64>(8000).expect("embedded MNIST");
    let (tr, te) = (&split.train, &split.test);
    let take = |i: usize, j: usize, y: bool| {
        let (m, i) = if i < tr.x.nrows() {
            (if y { &tr.y } else { &tr.x }, i)
        } else {
            (if y { &te.y } else { &te.x }, i - tr.x.nrows())
        };
        m[(i, j)]
    };
    (
        Mat::from_fn(n, d, |i, j| take(i, j, false)),
        Mat::from_fn(n, c, |i, j| take(i, j, true)),
    )
}
