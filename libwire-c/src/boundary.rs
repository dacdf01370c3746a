//! Crossing the C boundary: C strings and pointers in, error buffers and
//! out-parameters back, and no panic let through. The only unsafe code of
//! the crate: each function says what its caller (a C program, per the
//! header's documentation) promises.

use std::{
    ffi::{CStr, c_char},
    panic::{AssertUnwindSafe, catch_unwind},
};

/// Size of an error buffer.
const ERRBUF_SIZE: usize = crate::WIRE_ERRBUF_SIZE;

/// Runs `body`; a panic becomes `on_panic` (never unwinds into C).
pub fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// A C string argument as UTF-8; `None` for NULL or invalid UTF-8.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string valid for the call.
pub unsafe fn string(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().ok().map(str::to_owned)
}

/// Copies `message` into the caller's error buffer (cut to fit, always
/// NUL-terminated); nothing for a NULL buffer.
///
/// # Safety
/// `errbuf` is NULL or points to [`ERRBUF_SIZE`] writable bytes.
pub unsafe fn set_errbuf(errbuf: *mut c_char, message: &str) {
    if errbuf.is_null() {
        return;
    }
    let bytes = message.as_bytes();
    let len = bytes.len().min(ERRBUF_SIZE - 1);
    // SAFETY: the caller's promise: ERRBUF_SIZE bytes, and len < that.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), errbuf.cast::<u8>(), len);
        *errbuf.add(len) = 0;
    }
}

/// The object behind a handle pointer; `None` for NULL.
///
/// # Safety
/// `pointer` is NULL or came from this library's `Box::into_raw` of a
/// `T` not yet freed.
pub unsafe fn object<'a, T>(pointer: *const T) -> Option<&'a T> {
    // SAFETY: the caller's promise.
    unsafe { pointer.as_ref() }
}

/// Writes `value` to an out-parameter; nothing for NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: the caller's promise.
        unsafe { out.write(value) };
    }
}

/// `len` bytes at `data` (none for a NULL pointer or 0).
///
/// # Safety
/// `data` is NULL or valid for reads of `len` bytes for the call.
pub unsafe fn bytes<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(data, len) }
}

/// `len` values at `data` (none for a NULL pointer or 0).
///
/// # Safety
/// `data` is NULL or valid for reads of `len` values for the call.
pub unsafe fn slice<'a, T>(data: *const T, len: usize) -> &'a [T] {
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(data, len) }
}

/// Gives a boxed object to C.
pub fn into_raw<T>(object: T) -> *mut T {
    Box::into_raw(Box::new(object))
}

/// Takes a boxed object back from C and drops it; nothing for NULL.
///
/// # Safety
/// `pointer` is NULL or came from [`into_raw`] and is not used again.
pub unsafe fn free<T>(pointer: *mut T) {
    if !pointer.is_null() {
        // SAFETY: the caller's promise.
        drop(unsafe { Box::from_raw(pointer) });
    }
}

/// Calls a C packet handler.
///
/// # Safety
/// `handler` is a valid function that takes these arguments; the header
/// and data stay valid for the call.
pub unsafe fn call(
    handler: crate::WireHandler,
    user: *mut u8,
    header: &crate::WirePkthdr,
    data: &[u8],
) {
    // SAFETY: the caller's promise; the pointers come from references.
    unsafe { handler(user, header, data.as_ptr()) };
}
