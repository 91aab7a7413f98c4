//! DPDK telemetry commands (`dpdk-telemetry.py`, the `dpdk_telemetry.v2` socket) as safe
//! Rust: [`register`] a handler that fills a [`Dict`].
//!
//! DPDK calls a command's callback on its telemetry thread with the command name, the
//! parameter string and a reply container; the callback has no user data, so one C
//! trampoline looks the handler up by name in a table. A handler that panics is an
//! error reply, never an unwind into C.
use dpdk_sys::rte_tel_data;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::Arc;

/// A telemetry dictionary: the reply container of a command, or a child dictionary
/// made with [`Dict::new`] and handed to a parent with [`Dict::dict`].
pub struct Dict {
    d: *mut rte_tel_data,
    /// A child not yet handed to a parent: freed on drop.
    owned: bool,
}

/// Entries a dictionary holds at most (`RTE_TEL_MAX_DICT_ENTRIES`).
pub const MAX_ENTRIES: usize = 256;

impl Dict {
    /// # Safety
    /// `d` is a valid `rte_tel_data` that no one else writes while this lives.
    unsafe fn start(d: *mut rte_tel_data, owned: bool) -> Dict {
        // SAFETY: per the contract above.
        unsafe { dpdk_sys::rte_tel_data_start_dict(d) };
        Dict { d, owned }
    }

    /// A fresh child dictionary (None when DPDK cannot allocate one).
    pub fn new() -> Option<Dict> {
        // SAFETY: allocates a fresh container (NULL on failure).
        let d = unsafe { dpdk_sys::rte_tel_data_alloc() };
        // SAFETY: a fresh container, owned here.
        (!d.is_null()).then(|| unsafe { Dict::start(d, true) })
    }

    pub fn u64(&mut self, name: &str, v: u64) {
        let n = CString::new(name.replace('\0', "")).expect("NULs removed");
        // SAFETY: self.d is a valid dict; the name is copied.
        unsafe { dpdk_sys::rte_tel_data_add_dict_u64(self.d, n.as_ptr(), v) };
    }

    pub fn str(&mut self, name: &str, v: &str) {
        let n = CString::new(name.replace('\0', "")).expect("NULs removed");
        let v = CString::new(v.replace('\0', "")).expect("NULs removed");
        // SAFETY: self.d is a valid dict; both strings are copied (truncated at 127).
        unsafe { dpdk_sys::rte_tel_data_add_dict_string(self.d, n.as_ptr(), v.as_ptr()) };
    }

    /// Adds `child` under `name`; the parent takes it (and frees it with itself).
    pub fn dict(&mut self, name: &str, mut child: Dict) {
        let n = CString::new(name.replace('\0', "")).expect("NULs removed");
        // SAFETY: both valid; keep=0 hands `child` to the parent, which frees it. On
        // failure (a full dictionary) the parent did not take it, and `child` still
        // owns it (freed by its drop).
        let rc =
            unsafe { dpdk_sys::rte_tel_data_add_dict_container(self.d, n.as_ptr(), child.d, 0) };
        if rc == 0 {
            child.owned = false;
        }
    }
}

impl Drop for Dict {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: a container from rte_tel_data_alloc that no parent took.
            unsafe { dpdk_sys::rte_tel_data_free(self.d) };
        }
    }
}

/// What a command runs: the parameter string (after the comma), the reply to fill.
pub type Handler = Arc<dyn Fn(Option<&str>, &mut Dict) + Send + Sync>;

/// Registered handlers by command name (written at start-up, read by the telemetry thread).
static HANDLERS: parking_lot::RwLock<Vec<(String, Handler)>> = parking_lot::RwLock::new(Vec::new());

/// The callback DPDK calls for every command registered here.
unsafe extern "C" fn dispatch(
    cmd: *const c_char,
    params: *const c_char,
    d: *mut rte_tel_data,
) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -1;
    }
    // SAFETY: DPDK passes the NUL-terminated command name and parameter string (or
    // NULL), valid for the duration of the call.
    let (cmd, params) = unsafe {
        (
            CStr::from_ptr(cmd).to_string_lossy().into_owned(),
            (!params.is_null()).then(|| CStr::from_ptr(params).to_string_lossy().into_owned()),
        )
    };
    let Some(h) = HANDLERS.read().iter().find(|(n, _)| *n == cmd).map(|(_, h)| h.clone()) else {
        return -1;
    };
    // SAFETY: DPDK hands us the reply container for this call only; not ours to free.
    let mut reply = unsafe { Dict::start(d, false) };
    // A panic must not unwind into C: report an error reply instead.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        h(params.as_deref(), &mut reply)
    })) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Registers `cmd` (e.g. `/drlb/stats`) with its help text. Call after EAL init.
pub fn register(cmd: &'static CStr, help: &'static CStr, handler: Handler) -> Result<(), String> {
    let name = cmd.to_string_lossy().into_owned();
    HANDLERS.write().push((name, handler));
    // SAFETY: static NUL-terminated strings; `dispatch` has the telemetry_cb signature
    // and is safe to call from the telemetry thread at any time after this.
    let rc = unsafe {
        dpdk_sys::rte_telemetry_register_cmd(cmd.as_ptr(), Some(dispatch), help.as_ptr())
    };
    if rc != 0 {
        return Err(format!("cannot register telemetry command {cmd:?}: error {rc}"));
    }
    Ok(())
}
