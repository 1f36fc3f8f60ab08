//! Generation and verification speed for every algorithm and window size.
//!
//! Run: `cargo bench -p sshield-otp --bench otp`, or `scripts/bench` for the table in
//! `docs/benchmarks.md`. Benchmark ids:
//!
//! - `generate/<ALG>`: one TOTP code (one HMAC).
//! - `verify/<ALG>/w<N>`: `verify_totp` of a correct code with a ±N window (2N+1 HMACs).
//! - `verify-wrong/<ALG>/w1`: the same with a wrong code, ±1. `verify_totp` computes every
//!   step of the window whatever matches, so this should equal `verify/<ALG>/w1`.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use sshield_otp::{
    totp, verify_totp, Algorithm, Digits, Period, Secret, TotpMatch, TotpParams, Window,
};

const ALGORITHMS: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
const WINDOWS: [u64; 3] = [1, 3, 10];
const NOW: u64 = 1_700_000_000;

fn params(algorithm: Algorithm) -> TotpParams {
    TotpParams {
        algorithm,
        digits: Digits::SIX,
        period: Period::THIRTY,
    }
}

/// The login path's call: no learned drift, a previous login some steps ago.
fn verify(secret: &Secret, p: &TotpParams, code: &str, window: Window) -> Option<TotpMatch> {
    verify_totp(
        black_box(secret),
        black_box(p),
        black_box(code),
        black_box(NOW),
        black_box(window),
        black_box(0),
        black_box(Some(NOW / 30 - 100)),
    )
}

/// A 6-digit code that matches no step of the ±`w` window around `NOW`.
fn wrong_code(secret: &Secret, p: &TotpParams, w: u64) -> String {
    (0u32..)
        .map(|n| format!("{n:06}"))
        .find(|c| verify_totp(secret, p, c, NOW, Window::symmetric(w), 0, None).is_none())
        .expect("some 6-digit code is wrong")
}

fn bench(c: &mut Criterion) {
    // A default-size (20-byte) secret, as `sshield enroll` makes.
    let secret = Secret::generate_default().expect("OS random source");

    let mut group = c.benchmark_group("generate");
    for algorithm in ALGORITHMS {
        let p = params(algorithm);
        group.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            b.iter(|| totp(black_box(&secret), black_box(&p), black_box(NOW)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("verify");
    for algorithm in ALGORITHMS {
        let p = params(algorithm);
        // The current step's code. Where it sits in the window does not matter: every step is
        // computed and compared (constant time), which `verify-wrong` below confirms.
        let code = totp(&secret, &p, NOW);
        for w in WINDOWS {
            let window = Window::symmetric(w);
            assert!(verify(&secret, &p, code.as_str(), window).is_some());
            group.bench_function(
                BenchmarkId::new(algorithm.to_string(), format!("w{w}")),
                |b| b.iter(|| verify(&secret, &p, code.as_str(), window)),
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("verify-wrong");
    for algorithm in ALGORITHMS {
        let p = params(algorithm);
        let code = wrong_code(&secret, &p, 1);
        let window = Window::symmetric(1);
        group.bench_function(BenchmarkId::new(algorithm.to_string(), "w1"), |b| {
            b.iter(|| verify(&secret, &p, &code, window))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
