//! A linear SVM trained as scikit-learn's `LinearSVC` trains it (liblinear's dual
//! coordinate descent for the L2-regularised squared-hinge loss, solver 1, with
//! shrinking; Hsieh et al., ICML 2008), with `class_weight='balanced'` and the intercept
//! as a constant feature of value 1 that is regularised like the others
//! (`intercept_scaling=1`).
//!
//! Written here rather than taken from linfa: `linfa-svm` is a kernel SVM over dense
//! `ndarray`s (100,000 × 20,000 would not fit), and a sparse linear solver is this one
//! loop. The visiting order is a seeded shuffle, so the same data trains the same model.

use super::tfidf::Csr;

/// The solver's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// The inverse regularisation strength (arxiv-sanity-lite: 0.01 to 0.1).
    pub c: f64,
    /// Stop when the projected gradient's spread is below this (liblinear's `eps`).
    pub eps: f64,
    /// At most this many passes over the data.
    pub max_iter: usize,
}

/// A trained linear SVM.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trained {
    /// One weight per feature.
    pub weights: Vec<f32>,
    /// The intercept.
    pub bias: f32,
    /// Each training row's margin without its own contribution to the weights
    /// (`w·x_i + b − α_i y_i (x_i·x_i + 1)`): an approximate leave-one-out margin, what
    /// the model would give that paper had it not been trained on it. Training margins
    /// themselves are pushed below -1 for every negative the model can separate, so a
    /// new paper would look better than all of them; these are not.
    pub held_out_margins: Vec<f32>,
}

/// Trains on the rows of `x` labelled by `positive`.
pub(crate) fn train(x: &Csr, positive: &[bool], n_features: usize, params: Params) -> Trained {
    let l = x.rows();
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = l - n_pos;
    if n_pos == 0 || n_neg == 0 {
        let bias = if n_pos == 0 { -1.0 } else { 1.0 };
        return Trained {
            weights: vec![0.0; n_features],
            bias,
            held_out_margins: vec![bias; l],
        };
    }
    // class_weight='balanced': each class weighs n / (2 n_class).
    let c_pos = params.c * l as f64 / (2.0 * n_pos as f64);
    let c_neg = params.c * l as f64 / (2.0 * n_neg as f64);
    let y = |i: usize| if positive[i] { 1.0 } else { -1.0 };
    // Squared hinge: the dual's diagonal gains 1 / (2 C_i); no upper bound on alpha.
    let diag: Vec<f64> = (0..l)
        .map(|i| 0.5 / if positive[i] { c_pos } else { c_neg })
        .collect();
    let (mut w, mut b, mut alpha) = warm_start(x, positive, n_features, (0.5 / c_pos, 0.5 / c_neg));
    let qd: Vec<f64> = (0..l)
        .map(|i| {
            let (_, v) = x.row(i);
            diag[i] + 1.0 + v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>()
        })
        .collect();
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    let mut rng = SplitMix64(0x5eed_1e55_ab1e_0001);
    // liblinear also keeps the smallest gradient, for variables at an upper bound:
    // the squared hinge has none.
    let mut pg_max_old = f64::INFINITY;
    for _ in 0..params.max_iter {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        for s in 0..active {
            let j = s + (rng.next() % (active - s) as u64) as usize;
            index.swap(s, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let (idx, val) = x.row(i);
            let yi = y(i);
            let margin = b + idx
                .iter()
                .zip(val)
                .map(|(&f, &v)| w[f as usize] * f64::from(v))
                .sum::<f64>();
            let g = yi * margin - 1.0 + alpha[i] * diag[i];
            let pg = if alpha[i] == 0.0 {
                if g > pg_max_old {
                    // Shrinking: a bound variable whose gradient says it stays bound.
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                g.min(0.0)
            } else {
                g
            };
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = (alpha[i] - old) * yi;
                for (&f, &v) in idx.iter().zip(val) {
                    w[f as usize] += d * f64::from(v);
                }
                b += d;
            }
            s += 1;
        }
        if pg_max - pg_min <= params.eps {
            if active == l {
                break;
            }
            // Converged on the active set: check everything once more.
            active = l;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    let held_out_margins = (0..l)
        .map(|i| {
            let (idx, val) = x.row(i);
            let margin = b + idx
                .iter()
                .zip(val)
                .map(|(&f, &v)| w[f as usize] * f64::from(v))
                .sum::<f64>();
            // qd[i] - diag[i] is x_i·x_i + 1 (the bias feature).
            (margin - alpha[i] * y(i) * (qd[i] - diag[i])) as f32
        })
        .collect();
    Trained {
        weights: w.into_iter().map(|v| v as f32).collect(),
        bias: b as f32,
        held_out_margins,
    }
}

/// The best start for the coordinate descent among those where every positive has
/// the same `alpha` and every negative the same: the dual restricted to two variables
/// is a 2×2 linear system over the classes' summed rows (one pass, no dot products).
/// With a store of negatives and a few likes the solution is mostly such a split, so
/// the descent starts close to it instead of from zero, and needs fewer passes over
/// the rows (BENCHMARKS.md "Interests"); it converges to the same optimum.
/// Returns the weights, the bias and each row's `alpha`.
fn warm_start(
    x: &Csr,
    positive: &[bool],
    n_features: usize,
    (d_pos, d_neg): (f64, f64),
) -> (Vec<f64>, f64, Vec<f64>) {
    let mut sums = [vec![0.0f64; n_features], vec![0.0f64; n_features]];
    let mut counts = [0.0f64; 2];
    for (i, &p) in positive.iter().enumerate() {
        let class = usize::from(!p);
        counts[class] += 1.0;
        let (idx, val) = x.row(i);
        for (&f, &v) in idx.iter().zip(val) {
            sums[class][f as usize] += f64::from(v);
        }
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    // The rows with their constant bias feature of 1: Σx̃ = (Σx, n).
    let pp = dot(&sums[0], &sums[0]) + counts[0] * counts[0] + counts[0] * d_pos;
    let nn = dot(&sums[1], &sums[1]) + counts[1] * counts[1] + counts[1] * d_neg;
    let pn = -(dot(&sums[0], &sums[1]) + counts[0] * counts[1]);
    // Minimise ½aᵀAa − (n_pos, n_neg)·a over a ≥ 0.
    let det = pp * nn - pn * pn;
    let (mut a_pos, mut a_neg) = if det > 0.0 {
        (
            (counts[0] * nn - pn * counts[1]) / det,
            (pp * counts[1] - pn * counts[0]) / det,
        )
    } else {
        (0.0, 0.0)
    };
    if !(a_pos >= 0.0 && a_neg >= 0.0) {
        // One class at zero: the other's own best.
        (a_pos, a_neg) = if counts[0] / pp > counts[1] / nn {
            (counts[0] / pp, 0.0)
        } else {
            (0.0, counts[1] / nn)
        };
    }
    let w = sums[0]
        .iter()
        .zip(&sums[1])
        .map(|(p, n)| a_pos * p - a_neg * n)
        .collect();
    let b = a_pos * counts[0] - a_neg * counts[1];
    let alpha = positive
        .iter()
        .map(|&p| if p { a_pos } else { a_neg })
        .collect();
    (w, b, alpha)
}

/// A small seeded generator (SplitMix64): the shuffle must not change between runs or
/// versions of a crate.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(rows: &[&[(u32, f32)]]) -> Csr {
        let mut m = Csr {
            indptr: vec![0],
            ..Csr::default()
        };
        for r in rows {
            for &(f, v) in *r {
                m.indices.push(f);
                m.data.push(v);
            }
            m.indptr.push(m.indices.len());
        }
        m
    }

    #[test]
    fn separable_classes_get_weights_of_the_right_sign() {
        let x = csr(&[
            &[(0, 1.0)],
            &[(0, 0.8), (2, 0.6)],
            &[(1, 1.0)],
            &[(1, 0.6), (2, 0.8)],
            &[(1, 1.0)],
        ]);
        let y = [true, true, false, false, false];
        let params = Params {
            c: 1.0,
            eps: 1e-4,
            max_iter: 1000,
        };
        let t = train(&x, &y, 3, params);
        let (w, b) = (&t.weights, t.bias);
        assert!(w[0] > 0.0 && w[1] < 0.0, "{w:?} {b}");
        for (i, &p) in y.iter().enumerate() {
            let (idx, val) = x.row(i);
            let m = b + idx
                .iter()
                .zip(val)
                .map(|(&f, &v)| w[f as usize] * v)
                .sum::<f32>();
            assert_eq!(m > 0.0, p, "row {i}: {m}");
            // Held-out margins are less confident than the training margins.
            let held_out = t.held_out_margins[i];
            assert!(
                if p { held_out <= m } else { held_out >= m },
                "row {i}: {m} {held_out}"
            );
        }
        // Same data, same model.
        assert_eq!(train(&x, &y, 3, params), t);
    }

    #[test]
    fn one_class_only_gives_a_constant_model() {
        let x = csr(&[&[(0, 1.0)]]);
        let params = Params {
            c: 0.1,
            eps: 0.1,
            max_iter: 10,
        };
        let t = train(&x, &[false], 2, params);
        assert_eq!((t.weights, t.bias), (vec![0.0, 0.0], -1.0));
    }
}
