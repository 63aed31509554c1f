//! The mathematics every part of the crate follows: shapes and row order, the MLP's
//! parameter layout, the losses, the linearised model, the damped Gauss-Newton step in its
//! forms, the spectral filter of `K` gradient steps, the kernel distance and the structured
//! NTK. Other docs link here instead of restating it. (This module holds no code.)
//!
//! # Shapes and row order
//!
//! A model `f(x; θ) ∈ R^C` has parameters `θ ∈ R^P`; a batch is `X` (`N × d`) with targets
//! `Y` (`N × C`). The residual `r = vec(f(X; θ) − Y) ∈ R^{N·C}` is **sample-major**: output `c`
//! of sample `n` is row `n·C + c`. The Jacobian `J = ∂vec(f)/∂θ` is `(N·C) × P` in the same
//! row order, and the empirical neural tangent kernel `Θ = J Jᵀ` is `(N·C) × (N·C)`, again in
//! that order (see [`crate::Model`], [`crate::Jacobian`], [`crate::ntk`]).
//!
//! # Parameter layout
//!
//! An [`Mlp`](crate::Mlp) with `widths = [d, h₁, …, C]` maps `a_{l−1}` (width `fan_in`) to
//! `z_l = s_w W_l a_{l−1} + s_b b_l` and `a_l = φ(z_l)`; the last layer has no activation
//! (linear read-out). **θ is the concatenation over layers, in order, of `W_l` row-major
//! (`fan_out × fan_in`, entry `(o, i)` at offset `o·fan_in + i` within the block) then `b_l`
//! (`fan_out`).** The multipliers are `s_w = s_b = 1` for
//! [`Parameterization::Standard`](crate::Parameterization::Standard) and `s_w = σ_w/√fan_in`,
//! `s_b = σ_b` for [`Parameterization::Ntk`](crate::Parameterization::Ntk) (stored
//! `W, b ~ N(0, 1)`). [`Layer`](crate::model::Layer) gives each layer's offsets and multipliers.
//! The hidden activations `φ` ([`Activation`](crate::Activation)) are `Identity`, `Relu`
//! (`max(z, 0)`, with `φ'(0) = 0`), `Tanh`, `Gelu` (exact: `½ z (1 + erf(z/√2))`) and `Softplus`
//! (`ln(1 + eᶻ)`).
//!
//! # Losses
//!
//! Losses are always the **mean** over the `N` samples ([`crate::solve::Loss`]):
//! - MSE: `L = (1/2N) Σ_n ‖f_n − y_n‖²`; output gradient `g_n = f_n − y_n`, curvature
//!   `H_n = I`.
//! - Softmax cross-entropy: `L = (1/N) Σ_n CE(softmax(f_n), y_n)` with `p_n = softmax(f_n)`;
//!   output gradient `g_n = p_n − y_n`, and its Gauss-Newton matrix is the GGN `JᵀHJ/N` with
//!   the per-sample block `H_n = diag(p_n) − p_n p_nᵀ` (`H` is block-diagonal over samples).
//!
//! # Linearised model
//!
//! At a linearisation point `θ̃` the linearised model is
//! `f_lin(x; θ) = f(x; θ̃) + J(x; θ̃)(θ − θ̃)`.
//! Iterative linearisation ([`crate::train`]) trains `f_lin` with an inner optimiser and sets
//! `θ̃ ← θ` every `K` inner steps (a "feature update"): `K = 1` is ordinary (S)GD, `K = ∞`
//! never updates the features (the finite-width NTK, or lazy, regime). One inner step needs
//! one JVP at `θ̃` with tangent `θ − θ̃` (it also returns `f(x; θ̃)`) and one VJP at `θ̃`;
//! `J` is never formed.
//!
//! # Damped Gauss-Newton step
//!
//! With mean loss and damping `λ`, the step `δ` minimises the quadratic model
//! `(1/N) Σ_n [g_nᵀ (Jδ)_n + ½ (Jδ)_nᵀ H_n (Jδ)_n] + (λ/2)‖δ‖²` (for MSE this is
//! `(1/2N)‖r + Jδ‖² + (λ/2)‖δ‖²` up to a constant), so every form below gives the same `δ`
//! ([`crate::solve::Form`]):
//! - primal: `(JᵀHJ + NλI) δ = −Jᵀg` (`P × P`; for `P ≤ N·C`);
//! - dual (kernel / NTK form): `δ = −Jᵀα` with `(HΘ + NλI) α = g` (`(N·C) × (N·C)`; for
//!   `N·C < P`; for MSE `H = I` and this is `(Θ + NλI) α = r`; `Jᵀα` is one VJP, so `J` need
//!   not exist);
//! - matrix-free: conjugate gradients on `JᵀHJ + NλI` with JVPs and VJPs (Hessian-free), when
//!   both sizes are large;
//! - matrix-free dual: conjugate gradients on `(Θ + NλI) α = g` with `Θv = J(Jᵀv)` (one VJP and
//!   one JVP), preconditioned by a rank-`M` Nyström approximation `Θ ≈ UΛUᵀ` from `M` kernel
//!   columns, `P⁻¹ = (λ_M + Nλ) U (Λ + NλI)⁻¹ Uᵀ + (I − UUᵀ)`
//!   ([`NtkNystrom`](crate::solve::NtkNystrom)); for cross-entropy the symmetric form
//!   `(LᵀΘL + NλI) β = LᵀΘg`, `α = (g − Lβ)/(Nλ)` with `H = LLᵀ` (Woodbury's identity).
//!
//! The primal and dual forms agree by the push-through identity
//! `(JᵀHJ + NλI)⁻¹ Jᵀ = Jᵀ (HJJᵀ + NλI)⁻¹`.
//!
//! # K gradient steps in closed form
//!
//! For MSE on a full batch, `K` gradient-descent steps of size `η` on the linearised loss,
//! starting from `θ̃`, move θ by `δ_K = −Jᵀ U diag(φ_K(s_i)) Uᵀ r` where `Θ = U diag(s) Uᵀ` and
//!
//! `φ_K(s) = (1 − (1 − ηs/N)^K)/s` (limit `ηK/N` as `s → 0`; see [`crate::train::phi_k`]).
//!
//! The same eigendecomposition gives every damping `λ` (filter `φ(s) = 1/(s + Nλ)`, the damped
//! Gauss-Newton step) and gradient flow; the two filters agree for small and large `s` when
//! `λ ≈ 1/(ηK)`. This is the precise sense in which `K` inner gradient steps are a damped
//! Gauss-Newton step, and it makes `K = 10⁶` as cheap as `K = 1` ([`crate::solve::Filter`]).
//!
//! # Kernel distance
//!
//! How far the features moved between two parameter vectors, measured on a fixed probe subset:
//! `d(Θ₁, Θ₂) = 1 − ⟨Θ₁, Θ₂⟩_F / (‖Θ₁‖_F ‖Θ₂‖_F)` ([`crate::ntk::kernel_distance`]); `0` for
//! kernels that are positive multiples of each other.
//!
//! # Structured NTK
//!
//! For an MLP the backprop signal of output `c` of sample `n` at layer `l` is
//! `g_{l,nc} = ∂f_c/∂z_l`; the Jacobian block of `W_l` in row `n·C + c` is the outer product
//! `s_w g_{l,nc} ⊗ a_{l−1,n}` and that of `b_l` is `s_b g_{l,nc}`. Stacking the signals of a
//! layer as `G_l` (`(N·C) × fan_out`, rows in the order above) and its inputs as `A_{l−1}`
//! (`N × fan_in`),
//!
//! `Θ = Σ_l (G_l G_lᵀ) ⊙ ((s_w² A_{l−1} A_{l−1}ᵀ + s_b²) ⊗ 1_{C×C})`
//!
//! (`⊗ 1_{C×C}` repeats each sample-pair entry over the `C × C` output block; with the standard
//! parameterisation the second factor is `A_{l−1} A_{l−1}ᵀ + 1`). Per layer this is one Gram of
//! backprop signals and one Gram of activations: about `P / Σ_l fan_out_l` times fewer flops
//! than `J Jᵀ`, and no `J` in memory ([`crate::ntk::Method::Structured`]).
