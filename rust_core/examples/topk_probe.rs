//! Developer probe: times `topk` on an index directory written by the benchmark.
//!
//! `cargo run --release --example topk_probe -- DIR [K]` with DIR holding the six `kw_*.npy`
//! files plus query files `q_terms_N.npy` / `q_weights_N.npy` (N = 0, 1, ...).

use std::path::PathBuf;
use std::time::Instant;

use _core::csr::KeywordMatrix;
use _core::npy::map_npy;
use _core::topk::topk_with_stats;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: topk_probe DIR [K]")?);
    let k: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let m = KeywordMatrix::open(&dir, false)?;
    let mut qi = 0;
    while let (Ok(t), Ok(w)) = (
        map_npy::<i32>(&dir.join(format!("q_terms_{qi}.npy"))),
        map_npy::<f32>(&dir.join(format!("q_weights_{qi}.npy"))),
    ) {
        let (_, st) = topk_with_stats(&m, &t, &w, k, &[])?;
        let reps = 20;
        let t0 = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(topk_with_stats(&m, &t, &w, k, &[])?);
        }
        let dt = t0.elapsed().as_secs_f64() / f64::from(reps);
        // lower bound: just read the query's posting lists
        let t0 = Instant::now();
        for _ in 0..reps {
            let mut acc = 0u64;
            let mut accf = 0f32;
            for &term in t.iter() {
                let (items, ws) = m.postings(term as usize);
                acc += items.iter().map(|&x| u64::from(x as u32)).sum::<u64>();
                accf += f32::from_bits(ws.iter().fold(0u32, |a, x| a ^ x.to_bits()));
            }
            std::hint::black_box((acc, accf));
        }
        let dr = t0.elapsed().as_secs_f64() / f64::from(reps);
        println!(
            "query {qi}: {:.3} ms (read-only pass {:.3} ms)  {st:?}",
            dt * 1e3,
            dr * 1e3
        );
        qi += 1;
    }
    Ok(())
}
