//! A minimal SIMD vector abstraction for the hand-written kernels: AVX-512 (16 lanes) and
//! AVX2+FMA (8 lanes), chosen at run time by `simd_dispatch!`.
//! Shared by the encoder's kernels and the decoder's products.
//!
//! Why not rely on auto-vectorisation: LLVM left the register-blocked accumulators of the
//! depthwise and stem kernels scalar (`vaddss` + stores, seen with `perf annotate`), which
//! made them several times slower than their FLOP share.

/// One vector type. Every method requires the CPU feature of its implementation; callers
/// reach them only through `simd_dispatch!`, which checks it.
pub trait Simd: Copy {
    const LANES: usize;
    type V: Copy;
    /// `x` in every lane.
    ///
    /// # Safety
    /// The CPU has the implementation's feature.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` values from `p` (unaligned).
    ///
    /// # Safety
    /// The CPU has the implementation's feature; `p` is valid for reading `LANES` values.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `v` to `p` (unaligned).
    ///
    /// # Safety
    /// The CPU has the implementation's feature; `p` is valid for writing `LANES` values and
    /// no one else accesses them meanwhile.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`.
    ///
    /// # Safety
    /// The CPU has the implementation's feature.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `v` clamped to `[lo, hi]` lane by lane.
    ///
    /// # Safety
    /// The CPU has the implementation's feature.
    unsafe fn clamp(v: Self::V, lo: Self::V, hi: Self::V) -> Self::V;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct Avx512;
    #[derive(Clone, Copy)]
    pub struct Avx2;

    impl super::Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn splat(x: f32) -> __m512 {
            _mm512_set1_ps(x)
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const f32) -> __m512 {
            // SAFETY: the caller guarantees `LANES` readable values at `p` (trait contract).
            unsafe { _mm512_loadu_ps(p) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn store(p: *mut f32, v: __m512) {
            // SAFETY: the caller guarantees `LANES` writable values at `p` (trait contract).
            unsafe { _mm512_storeu_ps(p, v) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
            _mm512_fmadd_ps(a, b, c)
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn clamp(v: __m512, lo: __m512, hi: __m512) -> __m512 {
            _mm512_min_ps(_mm512_max_ps(v, lo), hi)
        }
    }

    impl super::Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn splat(x: f32) -> __m256 {
            _mm256_set1_ps(x)
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn load(p: *const f32) -> __m256 {
            // SAFETY: the caller guarantees `LANES` readable values at `p` (trait contract).
            unsafe { _mm256_loadu_ps(p) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn store(p: *mut f32, v: __m256) {
            // SAFETY: the caller guarantees `LANES` writable values at `p` (trait contract).
            unsafe { _mm256_storeu_ps(p, v) }
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
            _mm256_fmadd_ps(a, b, c)
        }
        /// # Safety
        /// The trait's contract.
        #[inline]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn clamp(v: __m256, lo: __m256, hi: __m256) -> __m256 {
            _mm256_min_ps(_mm256_max_ps(v, lo), hi)
        }
    }
}
#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

/// A raw output pointer that parallel tasks may share.
///
/// Whoever dereferences it promises that the tasks write disjoint elements of one live
/// buffer, so no element is written twice and none is read while another task writes it.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);
// SAFETY: the pointer is only dereferenced in `unsafe` code that upholds the disjointness
// contract above; sending or sharing the address itself is harmless.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`.
unsafe impl Sync for SendPtr {}

/// Highest instruction set the kernels may use: 2 = AVX-512, 1 = AVX2+FMA, 0 = portable.
/// Only lowered by tests, so that every path is checked against its reference on one machine.
pub static MAX_LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(2);

/// The instruction set `simd_dispatch!` picks on this CPU at the current [`MAX_LEVEL`]:
/// `avx512`, `avx2` or `portable` (benchmarks print it beside their figures).
pub fn dispatch_level() -> &'static str {
    match active_level() {
        2 => "avx512",
        1 => "avx2",
        _ => "portable",
    }
}

/// The level `simd_dispatch!` runs at: the highest this CPU has, at most [`MAX_LEVEL`]
/// (2 = AVX-512, 1 = AVX2+FMA, 0 = portable; both vector levels with F16C).
#[inline]
pub fn active_level() -> u8 {
    #[cfg(target_arch = "x86_64")]
    {
        let level = MAX_LEVEL.load(std::sync::atomic::Ordering::Relaxed);
        // F16C (half-precision loads) came before AVX2 and every CPU with AVX2 or AVX-512
        // has it; checking it keeps the dispatch honest all the same.
        let f16c = std::is_x86_feature_detected!("f16c");
        if level >= 2 && f16c && std::is_x86_feature_detected!("avx512f") {
            return 2;
        }
        if level >= 1
            && f16c
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            return 1;
        }
    }
    0
}

/// Held while a test lowers [`MAX_LEVEL`], so that tests needing the top level can wait.
#[cfg(test)]
static LEVEL_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with no other test lowering [`MAX_LEVEL`] meanwhile (tests).
#[cfg(test)]
pub fn at_max_level<R>(f: impl FnOnce() -> R) -> R {
    let _guard = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Runs `f` once per instruction set level this CPU has (tests).
#[cfg(test)]
pub fn for_each_level(mut f: impl FnMut(u8)) {
    use std::sync::atomic::Ordering;
    let _guard = LEVEL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for level in [0u8, 1, 2] {
        MAX_LEVEL.store(level, Ordering::Relaxed);
        f(level);
    }
    MAX_LEVEL.store(2, Ordering::Relaxed);
}

/// Defines `fn $name(args)` that runs `$generic::<Avx512>` or `$generic::<Avx2>` when the CPU
/// has the feature (checked at run time; CI and users build without `target-cpu=native`), else
/// the portable `$scalar`.
///
/// Kernels whose arguments are all safe types (slices, values) get a safe wrapper; such a
/// kernel's only precondition may be the CPU feature (it checks its slice sizes itself). A kernel
/// that takes a raw pointer is declared `unsafe fn $name = ...`: its wrapper stays `unsafe`
/// and its callers take over the kernel's `# Safety` contract, so no safe function forwards an
/// unchecked pointer.
macro_rules! simd_dispatch {
    ($vis:vis fn $name:ident = $generic:ident | $scalar:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            // SAFETY: every argument is a safe type, so the kernels' only precondition is the
            // CPU feature, which `dispatch_body!` checks.
            unsafe { $crate::simd::dispatch_body!($generic | $scalar ($($arg: $ty),*)) }
        }
    };
    ($vis:vis unsafe fn $name:ident = $generic:ident | $scalar:ident ($($arg:ident: $ty:ty),* $(,)?)) => {
        /// # Safety
        /// The contract of the generic kernel this dispatches to (raw pointer arguments).
        #[allow(clippy::too_many_arguments)]
        $vis unsafe fn $name($($arg: $ty),*) {
            // SAFETY: the caller upholds the kernel's contract; the CPU feature is checked.
            unsafe { $crate::simd::dispatch_body!($generic | $scalar ($($arg: $ty),*)) }
        }
    };
}
pub(crate) use simd_dispatch;

/// The body shared by both forms of [`simd_dispatch!`]; an `unsafe` expression whose caller
/// guarantees the generic kernel's own preconditions (the CPU feature is checked here).
macro_rules! dispatch_body {
    ($generic:ident | $scalar:ident ($($arg:ident: $ty:ty),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            use $crate::simd::{Avx2, Avx512};
            /// # Safety
            /// The CPU has AVX-512F, AVX2, FMA and F16C; the generic kernel's own contract holds.
            #[target_feature(enable = "avx512f,avx2,fma,f16c")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx512($($arg: $ty),*) {
                // SAFETY: the caller checked the CPU features; the rest is its contract.
                unsafe { $generic::<Avx512>($($arg),*) }
            }
            /// # Safety
            /// The CPU has AVX2, FMA and F16C; the generic kernel's own contract holds.
            #[target_feature(enable = "avx2,fma,f16c")]
            #[allow(clippy::too_many_arguments)]
            unsafe fn avx2($($arg: $ty),*) {
                // SAFETY: as above.
                unsafe { $generic::<Avx2>($($arg),*) }
            }
            match $crate::simd::active_level() {
                2 => return avx512($($arg),*),
                1 => return avx2($($arg),*),
                _ => {}
            }
        }
        #[allow(unused_unsafe)]
        $scalar($($arg),*)
    }};
}
pub(crate) use dispatch_body;

/// Runs `f` inside a function compiled for AVX-512F (or AVX2+FMA), where this CPU has it, so
/// that the loops LLVM auto-vectorises in `f` (once inlined there, as a closure called from
/// one place is) use 16 or 8 lanes instead of the 4 SSE lanes of the baseline x86-64 build.
/// For plain element-wise loops and fixed-order reductions: the same operations in the same
/// order, so the results are the same bits at every level.
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU has AVX-512F, AVX2 and FMA.
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// # Safety
        /// The CPU has AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        match active_level() {
            // SAFETY: `active_level` checked the CPU features.
            2 => return unsafe { avx512(f) },
            // SAFETY: as above.
            1 => return unsafe { avx2(f) },
            _ => {}
        }
    }
    f()
}
