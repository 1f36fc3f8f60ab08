//! Generation and verification speed for every algorithm and window size.
//! Run: `cargo bench -p sshield-otp`.
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use sshield_otp::{totp, verify_totp, Algorithm, Digits, Period, Secret, TotpParams, Window};

fn params(algorithm: Algorithm) -> TotpParams {
    TotpParams {
        algorithm,
        digits: Digits::SIX,
        period: Period::THIRTY,
    }
}

fn bench(c: &mut Criterion) {
    let secret = Secret::generate_default().expect("OS random source");
    let now = 1_700_000_000;
    let mut group = c.benchmark_group("generate");
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        let p = params(algorithm);
        group.bench_function(BenchmarkId::from_parameter(algorithm), |b| {
            b.iter(|| totp(&secret, &p, black_box(now)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("verify");
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        let p = params(algorithm);
        // The worst case: the code is the last one in the window, so every step is computed.
        let code = totp(&secret, &p, now);
        for w in [1u64, 3, 10] {
            group.bench_function(
                BenchmarkId::new(algorithm.to_string(), format!("±{w}")),
                |b| {
                    b.iter(|| {
                        verify_totp(
                            &secret,
                            &p,
                            black_box(code.as_str()),
                            now,
                            Window::symmetric(w),
                            0,
                            None,
                        )
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
