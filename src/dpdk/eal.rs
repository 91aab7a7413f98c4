//! EAL initialisation (once per process), lcores and launching workers on them.
use super::{errno_error, DpdkError};
use std::ffi::{c_int, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// Proof that EAL is up; dropping it tears EAL down (after everything made with it:
/// drop ports and pools first; `rte_eal_cleanup` unless [`Eal::keep_mapped_at_exit`])
/// and removes its runtime directory and hugepage files.
pub struct Eal {
    /// No `rte_eal_cleanup` at drop ([`Eal::keep_mapped_at_exit`]).
    keep_mapped: bool,
}

/// Whether EAL is up in this process (between a successful [`init`] and the drop of
/// its [`Eal`]).
pub fn is_up() -> bool {
    INITIALISED.load(Ordering::SeqCst)
}

/// Waits for the job on `lcore` and returns its result (0 also when EAL is down).
pub fn wait_lcore(lcore: u32) -> i32 {
    if !is_up() {
        return 0;
    }
    // SAFETY: EAL is up; waiting on any lcore id is valid (a non-worker returns at once).
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// Runs `rte_eal_init` on `args` (args[0] is the program name). Fails if called twice.
pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
    if INITIALISED.swap(true, Ordering::SeqCst) {
        return Err(DpdkError {
            op: "rte_eal_init",
            code: libc::EALREADY,
            msg: "EAL already initialised".into(),
        });
    }
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| {
            CString::new(a.as_bytes()).map_err(|_| DpdkError {
                op: "rte_eal_init",
                code: libc::EINVAL,
                msg: format!("argument {a:?} contains NUL"),
            })
        })
        .collect::<Result<_, _>>()?;
    // rte_eal_init permutes argv; give it its own NULL-terminated array of pointers.
    let mut argv: Vec<*mut libc::c_char> =
        cargs.iter().map(|c| c.as_ptr() as *mut libc::c_char).collect();
    argv.push(std::ptr::null_mut());
    let ours = runtime_dir_for(args).filter(|d| !d.exists());
    // SAFETY: argv holds argc valid NUL-terminated strings (kept alive by `cargs` for the
    // whole call) followed by NULL; EAL may reorder the pointers but not free them.
    let rc = unsafe { dpdk_sys::rte_eal_init(args.len() as c_int, argv.as_mut_ptr()) };
    if rc < 0 {
        let e = errno_error("rte_eal_init");
        INITIALISED.store(false, Ordering::SeqCst);
        // A failed init leaves the runtime directory it created (`config`, `mp_socket`).
        // Only one this attempt created is removed: a directory that was there before
        // may belong to a running primary with the same prefix (EAL's "Is another
        // primary process running?" failure).
        RuntimeFiles(ours).remove();
        return Err(e);
    }
    Ok(Eal { keep_mapped: false })
}

impl Eal {
    /// Leaves EAL's memory mapped when this value is dropped: no `rte_eal_cleanup`, the
    /// runtime directory and hugepage files still removed, the memory released by the
    /// process's exit. For a port whose driver leaves EAL's interrupt thread a dangling
    /// handle: DPDK 22.11's memif PMD frees its listening socket's interrupt handle on
    /// close without unregistering the socket's callback (`memif_socket_remove_device`),
    /// and the interrupt thread, woken by the cleanup's own unregistrations (the alarm's),
    /// reads that handle when it rebuilds its epoll set; when that happens after the
    /// cleanup has unmapped DPDK's memory, the process dies of a segfault at exit (seen
    /// once in CI: `dpdk_dumpcap_captures_rx_and_tx_while_forwarding`, exit by signal
    /// after its counters, `rte_intr_fd_get` in `eal-intr-thread`).
    pub fn keep_mapped_at_exit(&mut self) {
        self.keep_mapped = true;
    }

    pub fn main_lcore(&self) -> u32 {
        // SAFETY: valid after EAL init.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// Every enabled lcore except the main one, in id order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut v = Vec::new();
        let mut i = u32::MAX; // -1: start from the first lcore
        loop {
            // SAFETY: valid after EAL init; skip_main=1, wrap=0 returns RTE_MAX_LCORE at the end.
            i = unsafe { dpdk_sys::rte_get_next_lcore(i, 1, 0) };
            if i >= dpdk_sys::RTE_MAX_LCORE {
                return v;
            }
            v.push(i);
        }
    }

    /// The CPU an lcore is pinned to (for pinning helper threads beside the main lcore).
    pub fn lcore_cpu(&self, lcore: u32) -> i32 {
        // SAFETY: valid after EAL init for any lcore id.
        unsafe { dpdk_sys::rte_lcore_to_cpu_id(lcore as c_int) }
    }

    /// The NUMA node (DPDK's socket) of `lcore`'s CPU.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: valid after EAL init for any lcore id.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Runs `f` on `lcore`. A panic in `f` is caught there and reported by `wait` as -1.
    pub fn launch<F: FnOnce() -> i32 + Send + 'static>(
        &self,
        lcore: u32,
        f: F,
    ) -> Result<(), DpdkError> {
        type Job = Box<dyn FnOnce() -> i32 + Send>;
        extern "C" fn trampoline(arg: *mut c_void) -> c_int {
            // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call.
            let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
            // A panic (already printed by the panic hook) becomes -1 for `wait`.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
        }
        let job: Box<Job> = Box::new(Box::new(f));
        let arg = Box::into_raw(job) as *mut c_void;
        // SAFETY: trampoline has the lcore_function_t signature and takes ownership of arg.
        let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
        if rc != 0 {
            // SAFETY: the launch failed, so the trampoline will never run; reclaim arg.
            drop(unsafe { Box::from_raw(arg as *mut Job) });
            return super::check("rte_eal_remote_launch", rc).map(|_| ());
        }
        Ok(())
    }

    /// Lets `dpdk-dumpcap` / `dpdk-pdump` (secondary processes with the same
    /// `--file-prefix`) capture this process's ports. Costs nothing until one attaches.
    pub fn pdump_init(&self) -> Result<(), DpdkError> {
        // SAFETY: valid after EAL init; registers the pdump multi-process handler.
        let rc = unsafe { dpdk_sys::rte_pdump_init() };
        super::check("rte_pdump_init", rc).map(|_| ())
    }

    /// This process's runtime directory and hugepage files, to remove at exit (nothing
    /// for a secondary process, whose directory is the primary's).
    pub fn runtime_files(&self) -> RuntimeFiles {
        // SAFETY: valid after EAL init; returns a pointer to EAL's static path buffer.
        let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) }
            .to_str()
            .ok()
            .map(std::path::PathBuf::from);
        // SAFETY: valid after EAL init.
        let primary = unsafe { dpdk_sys::rte_eal_process_type() }
            == dpdk_sys::rte_proc_type_t_RTE_PROC_PRIMARY;
        RuntimeFiles(dir.filter(|_| primary))
    }
}

impl Drop for Eal {
    /// Releases EAL resources (`rte_eal_cleanup`, unless [`Eal::keep_mapped_at_exit`])
    /// and removes this process's runtime directory
    /// (`/var/run/dpdk/PREFIX`: its config, memseg maps and sockets), which EAL leaves
    /// behind, and its hugepage files: a stopped drlb leaves no files. Only the primary
    /// does this; a secondary's directory is the primary's.
    fn drop(&mut self) {
        let files = self.runtime_files();
        // SAFETY: harmless if pdump was never initialised (it only unregisters).
        unsafe { dpdk_sys::rte_pdump_uninit() };
        if !self.keep_mapped {
            // SAFETY: EAL is up (this value exists); ports and pools were dropped first.
            unsafe { dpdk_sys::rte_eal_cleanup() };
        }
        INITIALISED.store(false, Ordering::SeqCst);
        files.remove();
    }
}

/// The runtime directory EAL will use for these arguments: `--file-prefix` (default
/// `rte`) under `/var/run/dpdk` for root, else `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk`
/// (`eal_get_runtime_dir` in DPDK's `eal.c`).
fn runtime_dir_for(args: &[String]) -> Option<std::path::PathBuf> {
    let mut prefix = "rte";
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--file-prefix" {
            prefix = it.next()?;
        } else if let Some(p) = a.strip_prefix("--file-prefix=") {
            prefix = p;
        }
    }
    if prefix.is_empty() || prefix.contains('/') {
        return None;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let base = if unsafe { libc::geteuid() } == 0 {
        std::path::PathBuf::from("/var/run/dpdk")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/tmp".into())
            .join("dpdk")
    };
    Some(base.join(prefix))
}

/// What a primary leaves on disk: `/var/run/dpdk/PREFIX` and `PREFIXmap_*` hugepages.
#[derive(Debug, Clone)]
pub struct RuntimeFiles(Option<std::path::PathBuf>);

impl RuntimeFiles {
    /// Removes them (also on a failed start, where EAL is never cleaned up).
    pub fn remove(&self) {
        if let Some(d) = &self.0 {
            if let Some(prefix) = d.file_name().and_then(|p| p.to_str()) {
                remove_hugepage_files(prefix);
            }
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Removes `PREFIX` hugepage files (`PREFIXmap_N`) from every hugetlbfs mount. EAL
/// unlinks the pages it mapped itself, but not those a secondary process (dpdk-dumpcap's
/// capture pool) added; after the primary exits nothing can use them.
fn remove_hugepage_files(prefix: &str) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return;
    };
    let stem = format!("{prefix}map_");
    for dir in mounts.lines().filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(2) == Some(&"hugetlbfs")).then(|| f[1].to_string())
    }) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&stem)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
