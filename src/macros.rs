//! Crate-internal macros.

/// The `get_ref`, `get_mut` and `into_inner` accessors of a middleware
/// service whose wrapped service is the field `inner: S`, as every service of
/// this crate has; one definition instead of a copy per service.
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Unwraps the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

/// Builder setters that store their argument (or a value made from it) in
/// a field and return the builder, one line each instead of the same five
/// lines per setter:
///
/// ```text
/// builder_setters! {
///     /// Docs.
///     fn timeout(d: Duration) => config.timeout = d;
/// }
/// ```
#[cfg(any(feature = "sender", feature = "inbox"))]
macro_rules! builder_setters {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($arg:ident: $ty:ty) => $($field:ident).+ = $value:expr;
    )*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$($field).+ = $value;
                self
            }
        )*
    };
}
