//! Developer probe: times `score` (1,000 random candidates) and `topk` on an index directory
//! (the layout of `topk_probe`), for a matrix built in memory (`from_csr`, as the benchmark
//! does) and for the memory-mapped files (`open`).
//!
//! `cargo run --release --example core_probe -- DIR [K] [open|csr|both|scoreloop|topkloop]`
//!
//! `scoreloop` and `topkloop` report per-thread CPU time (not wall time), which is steadier on
//! the shared 2-core machine; `scoreloop` also compares the row kernels (one row at a time,
//! four lanes over the CSR arrays, four lanes over the packed rows).

use std::path::PathBuf;
use std::time::Instant;

use _core::csr::KeywordMatrix;
use _core::npy::map_npy;
use _core::rows::RowSource;
use _core::topk::topk_with_stats;

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// Nanoseconds of CPU time of this thread (Linux `CLOCK_THREAD_CPUTIME_ID`): time spent
/// descheduled on the busy shared machine does not count.
fn cpu_ns() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: plain libc call writing into a valid `timespec`.
    unsafe { clock_gettime(3, &mut ts) };
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn probe(
    name: &str,
    m: &KeywordMatrix,
    dir: &std::path::Path,
    k: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    // xorshift candidates, fixed seed
    let mut x = 88172645463325252u64;
    let cands: Vec<i32> = (0..1000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % m.n_items() as u64) as i32
        })
        .collect();
    let mut qi = 0;
    let mut topk_times = Vec::new();
    let mut score_times = Vec::new();
    while let (Ok(t), Ok(w)) = (
        map_npy::<i32>(&dir.join(format!("q_terms_{qi}.npy"))),
        map_npy::<f32>(&dir.join(format!("q_weights_{qi}.npy"))),
    ) {
        let (_, st) = topk_with_stats(m, &t, &w, k, &[])?;
        let mut ts = Vec::new();
        for _ in 0..15 {
            let t0 = Instant::now();
            std::hint::black_box(topk_with_stats(m, &t, &w, k, &[])?);
            ts.push(t0.elapsed().as_secs_f64());
        }
        let dt = median(ts);
        topk_times.push(dt);
        let mut ss = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            std::hint::black_box(m.score(&t, &w, &cands)?);
            ss.push(t0.elapsed().as_secs_f64());
        }
        score_times.push(median(ss));
        println!(
            "{name} q{qi}: topk {:.3} ms, score {:.1} us  scanned {} of {}, rescored {}",
            dt * 1e3,
            score_times[qi] * 1e6,
            st.postings_scanned,
            st.postings_total,
            st.rescored
        );
        qi += 1;
    }
    println!(
        "{name}: median topk {:.3} ms, median score {:.1} us",
        median(topk_times) * 1e3,
        median(score_times) * 1e6
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: core_probe DIR [K] [open|csr|both|scoreloop|topkloop]")?,
    );
    let k: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let which = args.next().unwrap_or_else(|| "csr".into());
    if which == "topkloop" {
        let ip = map_npy::<i64>(&dir.join("kw_indptr.npy"))?;
        let ix = map_npy::<i32>(&dir.join("kw_indices.npy"))?;
        let d = map_npy::<f32>(&dir.join("kw_data.npy"))?;
        let n_terms = map_npy::<i64>(&dir.join("kw_post_indptr.npy"))?.len() - 1;
        let m = KeywordMatrix::from_csr(&ip, &ix, &d, n_terms)?;
        let qs: Vec<_> = (0..4)
            .map(|qi| {
                (
                    map_npy::<i32>(&dir.join(format!("q_terms_{qi}.npy"))).unwrap(),
                    map_npy::<f32>(&dir.join(format!("q_weights_{qi}.npy"))).unwrap(),
                )
            })
            .collect();
        let mut times = Vec::new();
        let mut last = (0, 0);
        for _round in 0..7 {
            let c0 = cpu_ns();
            for (t, w) in &qs {
                let (_, st) = topk_with_stats(&m, t, w, k, &[])?;
                last = (st.postings_scanned, st.rescored);
            }
            times.push((cpu_ns() - c0) as f64 / qs.len() as f64 / 1e6);
        }
        println!(
            "topk: {:.3} ms cpu/query (q3: scanned {}, rescored {})",
            median(times),
            last.0,
            last.1
        );
        return Ok(());
    }
    if which == "scoreloop" {
        let ip = map_npy::<i64>(&dir.join("kw_indptr.npy"))?;
        let ix = map_npy::<i32>(&dir.join("kw_indices.npy"))?;
        let d = map_npy::<f32>(&dir.join("kw_data.npy"))?;
        let n_terms = map_npy::<i64>(&dir.join("kw_post_indptr.npy"))?.len() - 1;
        let m = KeywordMatrix::from_csr(&ip, &ix, &d, n_terms)?;
        let t = map_npy::<i32>(&dir.join("q_terms_0.npy"))?;
        let w = map_npy::<f32>(&dir.join("q_weights_0.npy"))?;
        let seq: Vec<i32> = (0..1000).collect();
        let mut x = 88172645463325252u64;
        let rnd: Vec<i32> = (0..1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % m.n_items() as u64) as i32
            })
            .collect();
        let none: Vec<i32> = Vec::new();
        let mut bylen = rnd.clone();
        bylen.sort_by_key(|&c| m.row(c as usize).0.len());
        for (name, c) in [
            ("none", &none),
            ("seq", &seq),
            ("rnd", &rnd),
            ("rnd by length", &bylen),
        ] {
            let mut v = Vec::new();
            for _ in 0..30 {
                let c0 = cpu_ns();
                for _ in 0..100 {
                    std::hint::black_box(m.score(&t, &w, c)?);
                }
                v.push((cpu_ns() - c0) as f64 / 100.0 / 1e3);
            }
            println!(
                "{name} score: {:.2} us cpu (median of 30 x 100 calls)",
                median(v)
            );
        }
        for n in [50usize, 100, 250, 500, 1000] {
            let c = &rnd[..n];
            let mut v = Vec::new();
            for _ in 0..30 {
                let c0 = cpu_ns();
                for _ in 0..100 {
                    std::hint::black_box(m.score(&t, &w, c)?);
                }
                v.push((cpu_ns() - c0) as f64 / 100.0 / n as f64);
            }
            println!("rnd {n}: {:.1} ns per candidate", median(v));
        }
        let smaps = std::fs::read_to_string("/proc/self/smaps_rollup")?;
        for l in smaps.lines().filter(|l| l.contains("AnonHuge")) {
            println!("{l}");
        }
        let mut qd = vec![0f32; m.n_terms()];
        for (&a, &b) in t.iter().zip(w.iter()) {
            qd[a as usize] = b;
        }
        let rows = m.rows();
        for (name, c) in [("seq", &seq), ("rnd", &rnd)] {
            let mut out = vec![0f32; c.len()];
            let (mut v1, mut v2, mut v3) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..30 {
                let c0 = cpu_ns();
                for _ in 0..100 {
                    for (o, &i) in out.iter_mut().zip(c.iter()) {
                        *o = rows.dot(i as usize, &qd);
                    }
                    std::hint::black_box(&mut out);
                }
                let c1 = cpu_ns();
                for _ in 0..100 {
                    _core::rows::dot_rows(rows, &qd, c, &mut out);
                    std::hint::black_box(&mut out);
                }
                let c2 = cpu_ns();
                for _ in 0..100 {
                    m.dot_many(&qd, c, &mut out);
                    std::hint::black_box(&mut out);
                }
                let c3 = cpu_ns();
                v3.push((c3 - c2) as f64 / 100.0 / 1e3);
                v1.push((c1 - c0) as f64 / 100.0 / 1e3);
                v2.push((c2 - c1) as f64 / 100.0 / 1e3);
            }
            println!(
                "{name}: one row at a time {:.2} us, lanes {:.2} us, packed lanes {:.2} us",
                median(v1),
                median(v2),
                median(v3)
            );
        }
        return Ok(());
    }
    if which != "csr" {
        let m = KeywordMatrix::open(&dir, false)?;
        probe("open", &m, &dir, k)?;
    }
    if which != "open" {
        let ip = map_npy::<i64>(&dir.join("kw_indptr.npy"))?;
        let ix = map_npy::<i32>(&dir.join("kw_indices.npy"))?;
        let d = map_npy::<f32>(&dir.join("kw_data.npy"))?;
        let n_terms = map_npy::<i64>(&dir.join("kw_post_indptr.npy"))?.len() - 1;
        let m = KeywordMatrix::from_csr(&ip, &ix, &d, n_terms)?;
        probe("csr", &m, &dir, k)?;
    }
    Ok(())
}
