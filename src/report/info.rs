//! `pifork info`: what the system offers, as the library sees it.

use super::json::{Array, Object};
use crate::info::SystemInfo;
use crate::kernel;

/// Formats a CPU list compactly: `0-3`, `0,2,4-5`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// The text `pifork info` prints.
pub fn info_text(info: &SystemInfo) -> String {
    let (sysname, release, machine) = &info.kernel;
    let pidfd = match &info.pidfd {
        Ok(()) => "works".to_string(),
        Err(why) => format!("unavailable ({why})"),
    };
    let path = match &info.pi_kernel {
        Ok(path) => path.to_string(),
        Err(why) => format!("none ({why})"),
    };
    let paths: Vec<&str> = info.kernels.iter().map(|p| p.as_str()).collect();
    format!(
        "pifork {}\nkernel: {sysname} {release} {machine}\npidfd: {pidfd}\ncpus: {} ({})\nbackend: {}\n\
         pi kernel: {path} (version {}; this CPU runs {}; {} forces one)\n",
        env!("CARGO_PKG_VERSION"),
        info.cpus.len(),
        format_cpu_list(&info.cpus),
        info.backend.as_str(),
        kernel::VERSION,
        paths.join(", "),
        kernel::ENV
    )
}

/// The one-object JSON form of [`info_text`]; `pidfd` is `"works"` or why not, `pi_kernel` the
/// path in use or null (with `pi_kernel_error` saying why).
pub fn info_json(info: &SystemInfo) -> String {
    let (sysname, release, machine) = &info.kernel;
    let pidfd = match &info.pidfd {
        Ok(()) => "works",
        Err(why) => why.as_str(),
    };
    let (path, why) = match &info.pi_kernel {
        Ok(path) => (Some(path.as_str()), None),
        Err(why) => (None, Some(why.as_str())),
    };
    Object::new()
        .field("version", env!("CARGO_PKG_VERSION"))
        .field("os", sysname)
        .field("release", release)
        .field("machine", machine)
        .field("pidfd", pidfd)
        .field("cpus", info.cpus.iter().collect::<Array>())
        .field("backend", info.backend.as_str())
        .field("pi_kernel", path)
        .field("pi_kernel_error", why)
        .field("kernel_version", kernel::VERSION)
        .field("kernels", info.kernels.iter().map(|p| p.as_str()).collect::<Array>())
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::Path;
    use pifork::Backend;

    #[test]
    fn cpu_lists_are_compact() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(format_cpu_list(&[0, 2, 4, 5]), "0,2,4-5");
        assert_eq!(format_cpu_list(&[]), "");
    }

    /// What a Pi with pidfd and a known kernel path reports, or, `ok` false, one without.
    fn system(ok: bool) -> SystemInfo {
        SystemInfo {
            kernel: ("Linux".into(), "6.1 \"x\"".into(), "aarch64".into()),
            pidfd: if ok { Ok(()) } else { Err("no\tpidfd: \\ \"ENOSYS\"\n".into()) },
            cpus: if ok { vec![0, 1, 3] } else { Vec::new() },
            backend: Backend::Pipe,
            pi_kernel: if ok {
                Ok(Path::Baseline)
            } else {
                Err("PIFORK_KERNEL=\"avx9\" unknown".into())
            },
            kernels: if ok { vec![Path::Baseline] } else { Vec::new() },
        }
    }

    #[test]
    fn json_is_exact_and_escaped() {
        let exact = |json: &str| {
            json.replace("VERSION", env!("CARGO_PKG_VERSION"))
                .replace("\"kernel_version\":2", &format!("\"kernel_version\":{}", kernel::VERSION))
        };
        let works = "{\"version\":\"VERSION\",\"os\":\"Linux\",\"release\":\"6.1 \\\"x\\\"\",\
            \"machine\":\"aarch64\",\"pidfd\":\"works\",\"cpus\":[0,1,3],\"backend\":\"pipe\",\
            \"pi_kernel\":\"baseline\",\"pi_kernel_error\":null,\"kernel_version\":2,\
            \"kernels\":[\"baseline\"]}";
        assert_eq!(info_json(&system(true)), exact(works));
        let fails = "{\"version\":\"VERSION\",\"os\":\"Linux\",\"release\":\"6.1 \\\"x\\\"\",\
            \"machine\":\"aarch64\",\"pidfd\":\"no\\u0009pidfd: \\\\ \\\"ENOSYS\\\"\\n\",\
            \"cpus\":[],\"backend\":\"pipe\",\"pi_kernel\":null,\
            \"pi_kernel_error\":\"PIFORK_KERNEL=\\\"avx9\\\" unknown\",\"kernel_version\":2,\
            \"kernels\":[]}";
        assert_eq!(info_json(&system(false)), exact(fails));
    }
}
