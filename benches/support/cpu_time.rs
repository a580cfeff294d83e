//! CPU time of the benchmarking thread, as a criterion measurement.
//!
//! Shared by the benches: on a busy machine, time spent waiting for a core
//! would otherwise land in whichever contender happened to be running.

use std::time::Duration;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};
use rustix::time::{ClockId, clock_gettime};

/// Measures the CPU time the current thread consumed.
pub(crate) struct ThreadCpuTime;

fn now() -> Duration {
    let t = clock_gettime(ClockId::ThreadCPUTime);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }
    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanoseconds as criterion's wall-time formatter does.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, base, units) = match *throughput {
            Throughput::Bytes(n) => (n, 1024.0, ["  B/s", "KiB/s", "MiB/s", "GiB/s"]),
            Throughput::BytesDecimal(n) => (n, 1000.0, ["  B/s", "KB/s", "MB/s", "GB/s"]),
            Throughput::Elements(n) => (n, 1000.0, [" elem/s", "Kelem/s", "Melem/s", "Gelem/s"]),
        };
        let per_second = |nanos: f64| per_iteration as f64 * (1e9 / nanos);
        let typical = per_second(typical);
        let mut scale = 1.0;
        let mut unit = units[0];
        for next in &units[1..] {
            if typical < scale * base {
                break;
            }
            scale *= base;
            unit = next;
        }
        values.iter_mut().for_each(|v| *v = per_second(*v) / scale);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
