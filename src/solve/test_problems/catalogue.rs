//! The catalogue: every problem at the sizes MGH and MINPACK's test driver use, with its
//! start, known minimum and MINPACK `lmder1` reference.

use super::fixed::*;
use super::variable::*;
use super::{JacobianFn, LmderReference, ResidualFn, TestProblem};

const fn lm(nfev: usize, njev: usize, info: u8, final_norm: f64) -> Option<LmderReference> {
    Some(LmderReference {
        nfev,
        njev,
        info,
        final_norm,
    })
}

#[allow(clippy::too_many_arguments)]
fn p(
    name: &str,
    mgh: u8,
    m: usize,
    start: Vec<f64>,
    known_f: f64,
    other_f: &'static [f64],
    lmder: Option<LmderReference>,
    residuals: ResidualFn,
    jacobian: JacobianFn,
) -> TestProblem {
    TestProblem {
        name: name.to_string(),
        mgh,
        n: start.len(),
        m,
        start,
        known_f,
        other_f,
        lmder,
        residuals,
        jacobian,
    }
}

/// `t_j (t_j − 1)`, `t_j = j/(n+1)`: the start of MGH 28 and 29.
fn boundary_start(n: usize) -> Vec<f64> {
    (1..=n)
        .map(|j| {
            let t = j as f64 / (n + 1) as f64;
            t * (t - 1.0)
        })
        .collect()
}

/// Every problem, at the sizes MGH and MINPACK's test driver use, in MGH order.
pub fn all() -> Vec<TestProblem> {
    let (r, j) = (rosenbrock_r as ResidualFn, rosenbrock_j as JacobianFn);
    let mut v = vec![
        p(
            "rosenbrock",
            1,
            2,
            vec![-1.2, 1.0],
            0.0,
            &[],
            lm(21, 16, 4, 0.0),
            r,
            j,
        ),
        p(
            "freudenstein_roth",
            2,
            2,
            vec![0.5, -2.0],
            0.0,
            &[48.9842],
            lm(14, 8, 1, 6.9988752),
            freudenstein_roth_r,
            freudenstein_roth_j,
        ),
        p(
            "powell_badly_scaled",
            3,
            2,
            vec![0.0, 1.0],
            0.0,
            &[],
            None,
            powell_badly_scaled_r,
            powell_badly_scaled_j,
        ),
        p(
            "brown_badly_scaled",
            4,
            3,
            vec![1.0, 1.0],
            0.0,
            &[],
            None,
            brown_badly_scaled_r,
            brown_badly_scaled_j,
        ),
        p(
            "beale",
            5,
            3,
            vec![1.0, 1.0],
            0.0,
            &[],
            None,
            beale_r,
            beale_j,
        ),
        p(
            "jennrich_sampson",
            6,
            10,
            vec![0.3, 0.4],
            124.362,
            &[],
            lm(21, 12, 1, 11.151779),
            jennrich_sampson_r,
            jennrich_sampson_j,
        ),
        p(
            "helical_valley",
            7,
            3,
            vec![-1.0, 0.0, 0.0],
            0.0,
            &[],
            lm(11, 8, 2, 9.9365231e-17),
            helical_valley_r,
            helical_valley_j,
        ),
        p(
            "bard",
            8,
            15,
            vec![1.0, 1.0, 1.0],
            8.21487e-3,
            &[17.4286],
            lm(6, 5, 1, 9.0635960e-2),
            bard_r,
            bard_j,
        ),
        p(
            "gaussian",
            9,
            15,
            vec![0.4, 1.0, 0.0],
            1.12793e-8,
            &[],
            None,
            gaussian_r,
            gaussian_j,
        ),
        p(
            "meyer",
            10,
            16,
            vec![0.02, 4000.0, 250.0],
            87.9458,
            &[],
            lm(126, 116, 3, 9.3779451),
            meyer_r,
            meyer_j,
        ),
        p(
            "gulf",
            11,
            99,
            vec![5.0, 2.5, 0.15],
            0.0,
            &[],
            None,
            gulf_r,
            gulf_j,
        ),
        p(
            "box3d",
            12,
            10,
            vec![0.0, 10.0, 20.0],
            0.0,
            &[],
            lm(7, 6, 2, 2.8529818e-16),
            box3d_r,
            box3d_j,
        ),
        p(
            "powell_singular",
            13,
            4,
            vec![3.0, -1.0, 0.0, 1.0],
            0.0,
            &[],
            lm(500, 499, 5, 3.3916607e-167),
            powell_singular_r,
            powell_singular_j,
        ),
        p(
            "wood",
            14,
            6,
            vec![-3.0, -1.0, -3.0, -1.0],
            0.0,
            &[],
            None,
            wood_r,
            wood_j,
        ),
        p(
            "kowalik_osborne",
            15,
            11,
            vec![0.25, 0.39, 0.415, 0.39],
            3.07505e-4,
            &[1.02734e-3],
            lm(18, 16, 1, 1.7535838e-2),
            kowalik_osborne_r,
            kowalik_osborne_j,
        ),
        p(
            "brown_dennis",
            16,
            20,
            vec![25.0, 5.0, -5.0, -1.0],
            85822.2,
            &[],
            lm(254, 236, 1, 292.95429),
            brown_dennis_r,
            brown_dennis_j,
        ),
        p(
            "osborne1",
            17,
            33,
            vec![0.5, 1.5, -1.0, 0.01, 0.02],
            5.46489e-5,
            &[],
            lm(18, 15, 1, 7.3924926e-3),
            osborne1_r,
            osborne1_j,
        ),
        p(
            "biggs_exp6",
            18,
            13,
            vec![1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
            0.0,
            &[5.65565e-3],
            None,
            biggs_exp6_r,
            biggs_exp6_j,
        ),
        p(
            "osborne2",
            19,
            65,
            vec![1.3, 0.65, 0.65, 0.7, 0.6, 3.0, 5.0, 7.0, 2.0, 4.5, 5.5],
            4.01377e-2,
            &[],
            lm(16, 12, 1, 2.0034404e-1),
            osborne2_r,
            osborne2_j,
        ),
    ];
    for (n, f, lmd) in [
        (6, 2.28767e-3, lm(8, 7, 1, 4.7829594e-2)),
        (9, 1.39976e-6, lm(8, 7, 3, 1.1831146e-3)),
        (12, 4.72238e-10, lm(10, 9, 3, 2.1731040e-5)),
    ] {
        let name = format!("watson_n{n}");
        v.push(p(
            &name,
            20,
            31,
            vec![0.0; n],
            f,
            &[],
            lmd,
            watson_r,
            watson_j,
        ));
    }
    let ext_rosen: Vec<f64> = (0..10)
        .map(|i| if i % 2 == 0 { -1.2 } else { 1.0 })
        .collect();
    v.push(p(
        "extended_rosenbrock_n10",
        21,
        10,
        ext_rosen,
        0.0,
        &[],
        None,
        extended_rosenbrock_r,
        extended_rosenbrock_j,
    ));
    let ext_powell: Vec<f64> = (0..8).map(|i| [3.0, -1.0, 0.0, 1.0][i % 4]).collect();
    v.push(p(
        "extended_powell_singular_n8",
        22,
        8,
        ext_powell,
        0.0,
        &[],
        None,
        powell_singular_r,
        powell_singular_j,
    ));
    for (n, f) in [(4, 2.24997e-5), (10, 7.08765e-5)] {
        let start = (1..=n).map(|j| j as f64).collect();
        let name = format!("penalty1_n{n}");
        v.push(p(
            &name,
            23,
            n + 1,
            start,
            f,
            &[],
            None,
            penalty1_r,
            penalty1_j,
        ));
    }
    for (n, f) in [(4, 9.37629e-6), (10, 2.93660e-4)] {
        let name = format!("penalty2_n{n}");
        v.push(p(
            &name,
            24,
            2 * n,
            vec![0.5; n],
            f,
            &[],
            None,
            penalty2_r,
            penalty2_j,
        ));
    }
    let n = 10;
    let vd_start = (1..=n).map(|j| 1.0 - j as f64 / n as f64).collect();
    v.push(p(
        "variably_dimensioned_n10",
        25,
        n + 2,
        vd_start,
        0.0,
        &[],
        None,
        variably_dimensioned_r,
        variably_dimensioned_j,
    ));
    v.push(p(
        "trigonometric_n10",
        26,
        n,
        vec![1.0 / n as f64; n],
        0.0,
        // A non-zero local minimum (‖r‖² = 2.79506e-5) that Levenberg–Marquardt and
        // Gauss–Newton reach from the standard start on some machines (rounding decides).
        &[2.79506e-5],
        None,
        trigonometric_r,
        trigonometric_j,
    ));
    for (n, lmd) in [
        (10, lm(14, 12, 2, 8.6625859e-15)),
        (30, lm(19, 14, 2, 1.4827859e-13)),
        (40, lm(19, 14, 2, 2.0245354e-13)),
    ] {
        let name = format!("brown_almost_linear_n{n}");
        v.push(p(
            &name,
            27,
            n,
            vec![0.5; n],
            0.0,
            &[1.0],
            lmd,
            brown_almost_linear_r,
            brown_almost_linear_j,
        ));
    }
    v.push(p(
        "discrete_boundary_n10",
        28,
        n,
        boundary_start(n),
        0.0,
        &[],
        None,
        discrete_boundary_r,
        discrete_boundary_j,
    ));
    v.push(p(
        "discrete_integral_n10",
        29,
        n,
        boundary_start(n),
        0.0,
        &[],
        None,
        discrete_integral_r,
        discrete_integral_j,
    ));
    v.push(p(
        "broyden_tridiagonal_n10",
        30,
        n,
        vec![-1.0; n],
        0.0,
        &[],
        None,
        broyden_tridiagonal_r,
        broyden_tridiagonal_j,
    ));
    v.push(p(
        "broyden_banded_n10",
        31,
        n,
        vec![-1.0; n],
        0.0,
        &[],
        None,
        broyden_banded_r,
        broyden_banded_j,
    ));
    for (m, lmd) in [(10, lm(3, 2, 3, 2.2360680)), (50, lm(3, 2, 3, 6.7082039))] {
        let name = format!("linear_full_rank_m{m}");
        let f = (m - 5) as f64;
        v.push(p(
            &name,
            32,
            m,
            vec![1.0; 5],
            f,
            &[],
            lmd,
            linear_full_rank_r,
            linear_full_rank_j,
        ));
    }
    for (m, lmd) in [(10, lm(3, 2, 1, 1.4638501)), (50, lm(3, 2, 1, 3.4826302))] {
        let name = format!("linear_rank1_m{m}");
        let mf = m as f64;
        let f = mf * (mf - 1.0) / (2.0 * (2.0 * mf + 1.0));
        v.push(p(
            &name,
            33,
            m,
            vec![1.0; 5],
            f,
            &[],
            lmd,
            linear_rank1_r,
            linear_rank1_j,
        ));
    }
    for (m, lmd) in [(10, lm(3, 2, 1, 1.9097274)), (50, lm(3, 2, 1, 3.6917294))] {
        let name = format!("linear_rank1_zero_m{m}");
        let mf = m as f64;
        let f = (mf * mf + 3.0 * mf - 6.0) / (2.0 * (2.0 * mf - 3.0));
        v.push(p(
            &name,
            34,
            m,
            vec![1.0; 5],
            f,
            &[],
            lmd,
            linear_rank1_zero_r,
            linear_rank1_zero_j,
        ));
    }
    for (n, f, lmd) in [
        (8, 3.51687e-3, lm(39, 20, 1, 5.9303236e-2)),
        (9, 0.0, lm(12, 9, 2, 1.2137434e-16)),
        (10, 6.50395e-3, lm(25, 12, 1, 8.0647100e-2)),
    ] {
        let name = format!("chebyquad_n{n}");
        let start = (1..=n).map(|j| j as f64 / (n + 1) as f64).collect();
        v.push(p(
            &name,
            35,
            n,
            start,
            f,
            &[],
            lmd,
            chebyquad_r,
            chebyquad_j,
        ));
    }
    v
}

/// The problem of [`all`] with this name (`None` if there is none).
pub fn by_name(name: &str) -> Option<TestProblem> {
    all().into_iter().find(|p| p.name == name)
}
