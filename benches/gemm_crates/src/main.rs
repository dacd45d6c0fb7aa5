//! GFLOP/s of `matrixmultiply` and `gemm` on the GEMM shapes of the benchmark workloads
//! (W1, W2, the small-batch MLP), one thread and two (two column halves on rayon, as the
//! cpu backend splits them), plus a 512² square for the machine's practical peak.

use std::time::Instant;

type Run = dyn Fn(usize, usize, usize, *const f32, isize, isize, *const f32, isize, isize, *mut f32) + Sync;

fn mm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, c: *mut f32) {
    // SAFETY: the callers pass buffers of the stated shapes and strides.
    unsafe { matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, n as isize, 1) }
}

fn gm(m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, c: *mut f32) {
    // SAFETY: as above.
    unsafe {
        gemm::gemm(m, n, k, c, 1, n as isize, false, a, csa, rsa, b, csb, rsb, 0.0, 1.0, false, false, false, gemm::Parallelism::None)
    }
}

fn halves(run: &Run, m: usize, k: usize, n: usize, a: *const f32, rsa: isize, csa: isize, b: *const f32, rsb: isize, csb: isize, c: *mut f32, ldc: usize) {
    let half = (n / 2).div_ceil(16) * 16;
    if half == 0 || half >= n {
        return run(m, k, n, a, rsa, csa, b, rsb, csb, c);
    }
    let (a, b, c) = (a as usize, b as usize, c as usize);
    let _ = ldc;
    rayon::join(
        || run(m, k, half, a as *const f32, rsa, csa, b as *const f32, rsb, csb, c as *mut f32),
        || unsafe {
            // SAFETY: the second half of B's columns and C's columns.
            run(m, k, n - half, a as *const f32, rsa, csa, (b as *const f32).offset(half as isize * csb), rsb, csb, (c as *mut f32).add(half))
        },
    );
}

fn main() {
    rayon::ThreadPoolBuilder::new().num_threads(2).build_global().unwrap();
    // (name, m, k, n, A transposed, B transposed)
    let shapes = [
        ("W1 fwd 1", 128, 784, 256, false, true),
        ("W1 fwd 2", 128, 256, 256, false, true),
        ("W1 dx 2", 128, 256, 256, false, false),
        ("W1 dW 1", 256, 128, 784, true, false),
        ("W2 conv2 fwd (per sample)", 32, 144, 196, false, false),
        ("W2 conv2 dcol (per sample)", 144, 32, 196, true, false),
        ("small fwd 1, batch 10", 10, 784, 200, false, true),
        ("small fwd 1, batch 100", 100, 784, 200, false, true),
        ("square 512", 512, 512, 512, false, false),
    ];
    for (name, m, k, n, ta, tb) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) * 0.1 - 0.6).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32) * 0.1 - 0.5).collect();
        let mut c = vec![0f32; m * n];
        let (rsa, csa) = if ta { (1, m as isize) } else { (k as isize, 1) };
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        let flops = 2.0 * (m * n * k) as f64;
        let mut row = format!("{name:<28} {m:>4}x{k:>4}x{n:>4}");
        let runs: [(&str, &Run, bool); 4] = [
            ("matrixmultiply 1t", &mm, false),
            ("matrixmultiply 2t", &mm, true),
            ("gemm 1t", &gm, false),
            ("gemm 2t", &gm, true),
        ];
        for (label, run, two) in runs {
            let iters = ((3e9 / flops) as usize).clamp(5, 50_000);
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..iters {
                    if two {
                        halves(run, m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, c.as_mut_ptr(), n);
                    } else {
                        run(m, k, n, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, c.as_mut_ptr());
                    }
                }
                best = best.min(t.elapsed().as_secs_f64() / iters as f64);
            }
            row.push_str(&format!("  {label} {:6.1}", flops / best / 1e9));
        }
        println!("{row}  GFLOP/s");
    }
}
