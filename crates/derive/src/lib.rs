//! Derives for the Logos runtime types (`logos-types`): each type's wire format, call routing
//! and error numbering are declared once, on the type.
//!
//! - [`Codec`](macro@Codec): `Write`, `EncodeSize` and `Read<Cfg = ()>` of `commonware-codec`.
//!   Structs write their fields in declaration order. Enums write the variant's
//!   `#[index(N)]` as one byte, then its fields; decoding an unknown byte fails with
//!   `InvalidEnum`, and two variants with the same index fail to compile. Every field must
//!   itself decode with `Cfg = ()`: variable lengths are bounded by the field's type
//!   (`BoundedVec`, `BoundedString`), never by the decoder's caller.
//! - [`MaxEncodeSize`](macro@MaxEncodeSize): the largest encoding, summed over fields (the
//!   largest variant for enums, plus its index byte), so storage items and calls can assert
//!   their bound at compile time.
//! - [`Dispatch`](macro@Dispatch): on a module's `Call` enum, a `CallHandler` trait with one
//!   method per call (the variant name in snake case, taking the dispatch context and the
//!   call's fields by reference, returning `crate::DispatchResult`) and `Call::dispatch`, the
//!   one `match` that routes a call to its handler.
//! - [`ModuleError`](macro@ModuleError): on a module's `Error` enum, the stable `index()` of
//!   every error (its `#[index(N)]`), its `name()`, and the conversion into
//!   `crate::DispatchError` with the module's index and name from
//!   `#[module_error(index = EXPR, name = "…")]`.
//!
//! Four attributes bundle the derives each kind of runtime type takes, so that a module's file
//! declares each type's shape once:
//! - [`record`](macro@record): a stored or transported struct or field-less enum (`Clone`,
//!   `Debug`, `PartialEq`, `Eq`, serde, `Codec`, `MaxEncodeSize`);
//! - [`calls`](macro@calls): a module's `Call` enum (as a record, plus `Dispatch`, serde-tagged
//!   by `call`);
//! - [`events`](macro@events): a module's `Event` enum (serde-tagged by `event`);
//! - [`errors`](macro@errors): a module's `Error` enum (`thiserror`, `ModuleError` with the
//!   `INDEX` and `NAME` constants of the module it is declared in).
//!
//! The generated code names `crate::codec` (the codec re-exports of `logos-types`),
//! `crate::Origin` and `crate::DispatchError`: these derives are for `logos-types` only.

use heck::ToSnakeCase;
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::{
    parse_macro_input, spanned::Spanned, Attribute, Data, DeriveInput, Error, Expr, Fields, Ident,
    Type,
};

/// Derives `Write`, `EncodeSize` and `Read<Cfg = ()>` (see the crate docs).
#[proc_macro_derive(Codec, attributes(index))]
pub fn derive_codec(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(codec(&input))
}

/// Derives `commonware_codec::MaxEncodeSize` (see the crate docs).
#[proc_macro_derive(MaxEncodeSize, attributes(index))]
pub fn derive_max_encode_size(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(max_encode_size(&input))
}

/// Derives a module's call handler trait and `Call::dispatch` (see the crate docs).
#[proc_macro_derive(Dispatch, attributes(index))]
pub fn derive_dispatch(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(dispatch(&input))
}

/// Derives a module error's `index()`, `name()` and `From<Error> for DispatchError` (see the
/// crate docs).
#[proc_macro_derive(ModuleError, attributes(index, module_error))]
pub fn derive_module_error(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(module_error(&input))
}

/// Marks a record: a struct or field-less enum stored or sent on chain.
#[proc_macro_attribute]
pub fn record(_attribute: TokenStream, item: TokenStream) -> TokenStream {
    bundle(
        quote! {
            #[derive(
                Clone, Debug, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize,
                crate::Codec, crate::MaxEncodeSize,
            )]
        },
        item,
    )
}

/// Marks a module's `Call` enum (see the crate docs).
#[proc_macro_attribute]
pub fn calls(_attribute: TokenStream, item: TokenStream) -> TokenStream {
    bundle(
        quote! {
            #[derive(
                Clone, Debug, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize,
                crate::Codec, crate::MaxEncodeSize, crate::Dispatch,
            )]
            #[serde(tag = "call", rename_all = "snake_case")]
        },
        item,
    )
}

/// Marks a module's `Event` enum (see the crate docs).
#[proc_macro_attribute]
pub fn events(_attribute: TokenStream, item: TokenStream) -> TokenStream {
    bundle(
        quote! {
            #[derive(Clone, Debug, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
            #[serde(tag = "event", rename_all = "snake_case")]
        },
        item,
    )
}

/// Marks a module's `Error` enum (see the crate docs): its module is the `INDEX` and `NAME`
/// in scope.
#[proc_macro_attribute]
pub fn errors(_attribute: TokenStream, item: TokenStream) -> TokenStream {
    bundle(
        quote! {
            #[derive(Debug, Clone, PartialEq, Eq, ::thiserror::Error, crate::ModuleError)]
            #[module_error(index = INDEX, name = NAME)]
        },
        item,
    )
}

fn bundle(attributes: Tokens, item: TokenStream) -> TokenStream {
    let item = Tokens::from(item);
    quote!(#attributes #item).into()
}

fn expand(result: syn::Result<Tokens>) -> TokenStream {
    result.unwrap_or_else(Error::into_compile_error).into()
}

fn no_generics(input: &DeriveInput) -> syn::Result<()> {
    if input.generics.params.is_empty() {
        Ok(())
    } else {
        Err(Error::new_spanned(
            &input.generics,
            "logos derives take no generic parameters",
        ))
    }
}

/// One enum variant: its name, its `#[index(N)]` and its fields.
struct Variant<'a> {
    name: &'a Ident,
    index: Expr,
    fields: &'a Fields,
}

fn index_of(attrs: &[Attribute], span: Span) -> syn::Result<Expr> {
    let mut found = None;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("index")) {
        if found.is_some() {
            return Err(Error::new_spanned(attr, "one #[index(N)] per variant"));
        }
        found = Some(attr.parse_args::<Expr>()?);
    }
    found.ok_or_else(|| Error::new(span, "every variant needs #[index(N)]"))
}

fn variants(input: &DeriveInput) -> syn::Result<Vec<Variant<'_>>> {
    let Data::Enum(data) = &input.data else {
        return Err(Error::new_spanned(input, "expected an enum"));
    };
    data.variants
        .iter()
        .map(|variant| {
            Ok(Variant {
                name: &variant.ident,
                index: index_of(&variant.attrs, variant.span())?,
                fields: &variant.fields,
            })
        })
        .collect()
}

/// A compile-time check that no two variants share an index.
fn distinct_indices(name: &Ident, variants: &[Variant<'_>]) -> Tokens {
    let indices = variants.iter().map(|variant| &variant.index);
    let message = format!("two variants of {name} share an #[index]");
    quote! {
        const _: () = {
            let indices: &[u8] = &[#(#indices),*];
            let mut i = 0;
            while i < indices.len() {
                let mut j = i + 1;
                while j < indices.len() {
                    assert!(indices[i] != indices[j], #message);
                    j += 1;
                }
                i += 1;
            }
        };
    }
}

/// Bindings of a variant's (or struct's) fields: `{ a, b }`, `(field_0, field_1)` or nothing.
fn bindings(fields: &Fields) -> (Tokens, Vec<Ident>) {
    match fields {
        Fields::Named(named) => {
            let names: Vec<Ident> = named
                .named
                .iter()
                .map(|field| field.ident.clone().expect("named field"))
                .collect();
            (quote!({ #(#names),* }), names)
        }
        Fields::Unnamed(unnamed) => {
            let names: Vec<Ident> = (0..unnamed.unnamed.len())
                .map(|i| format_ident!("field_{i}"))
                .collect();
            (quote!(( #(#names),* )), names)
        }
        Fields::Unit => (quote!(), Vec::new()),
    }
}

/// The encoded size of `binding`, a field of type `ty`. Arrays sum their elements (the codec
/// sizes only arrays of fixed-size elements).
fn size_of(binding: &Ident, ty: &Type) -> Tokens {
    match ty {
        Type::Array(_) => {
            quote!(#binding.iter().map(crate::codec::EncodeSize::encode_size).sum::<usize>())
        }
        _ => quote!(crate::codec::EncodeSize::encode_size(#binding)),
    }
}

fn sizes(fields: &Fields, names: &[Ident]) -> Vec<Tokens> {
    fields
        .iter()
        .zip(names)
        .map(|(field, name)| size_of(name, &field.ty))
        .collect()
}

/// The expression that reads `fields` into a value of `path` (a struct or a variant).
fn read_fields(path: Tokens, fields: &Fields) -> Tokens {
    let read = |ty: &Type| quote!(crate::codec::read_unit::<#ty>(buf)?);
    match fields {
        Fields::Named(named) => {
            let reads = named.named.iter().map(|field| {
                let name = &field.ident;
                let value = read(&field.ty);
                quote!(#name: #value)
            });
            quote!(#path { #(#reads),* })
        }
        Fields::Unnamed(unnamed) => {
            let reads = unnamed.unnamed.iter().map(|field| read(&field.ty));
            quote!(#path ( #(#reads),* ))
        }
        Fields::Unit => path,
    }
}

fn codec(input: &DeriveInput) -> syn::Result<Tokens> {
    no_generics(input)?;
    let name = &input.ident;
    let (write, size, read, checks) = match &input.data {
        Data::Struct(data) => {
            let (pattern, names) = bindings(&data.fields);
            let field_sizes = sizes(&data.fields, &names);
            let read = read_fields(quote!(Self), &data.fields);
            (
                quote! {
                    let Self #pattern = self;
                    #(crate::codec::Write::write(#names, buf);)*
                },
                quote! {
                    let Self #pattern = self;
                    0 #(+ #field_sizes)*
                },
                quote!(Ok(#read)),
                quote!(),
            )
        }
        Data::Enum(_) => {
            let variants = variants(input)?;
            let writes = variants.iter().map(|variant| {
                let (pattern, names) = bindings(variant.fields);
                let (name, index) = (variant.name, &variant.index);
                quote! {
                    Self::#name #pattern => {
                        crate::codec::Write::write(&(#index as u8), buf);
                        #(crate::codec::Write::write(#names, buf);)*
                    }
                }
            });
            let sizes = variants.iter().map(|variant| {
                let (pattern, names) = bindings(variant.fields);
                let field_sizes = sizes(variant.fields, &names);
                let name = variant.name;
                quote!(Self::#name #pattern => 1 #(+ #field_sizes)*)
            });
            let reads = variants.iter().map(|variant| {
                let (name, index) = (variant.name, &variant.index);
                let value = read_fields(quote!(Self::#name), variant.fields);
                quote!(if tag == (#index as u8) { return Ok(#value); })
            });
            (
                quote!(match self { #(#writes)* }),
                quote!(match self { #(#sizes,)* }),
                quote! {
                    let tag = <u8 as crate::codec::ReadExt>::read(buf)?;
                    #(#reads)*
                    Err(crate::codec::Error::InvalidEnum(tag))
                },
                distinct_indices(name, &variants),
            )
        }
        Data::Union(_) => return Err(Error::new_spanned(input, "unions are not supported")),
    };
    Ok(quote! {
        #checks

        impl crate::codec::Write for #name {
            fn write(&self, buf: &mut impl crate::codec::BufMut) {
                #write
            }
        }

        impl crate::codec::EncodeSize for #name {
            fn encode_size(&self) -> usize {
                #size
            }
        }

        impl crate::codec::Read for #name {
            type Cfg = ();

            fn read_cfg(
                buf: &mut impl crate::codec::Buf,
                _: &(),
            ) -> Result<Self, crate::codec::Error> {
                #read
            }
        }
    })
}

/// The largest encoding of a field of type `ty`. Arrays of variable-size elements get
/// `N × element` (the codec gives only fixed-size arrays a bound of their own).
fn max_size_of(ty: &Type) -> Tokens {
    match ty {
        Type::Array(array) => {
            let (element, length) = (&array.elem, &array.len);
            let element = max_size_of(element);
            quote!((#length) * #element)
        }
        _ => quote!(<#ty as crate::codec::MaxEncodeSize>::MAX_ENCODE_SIZE),
    }
}

fn fields_max_size(fields: &Fields) -> Tokens {
    let sizes = fields.iter().map(|field| max_size_of(&field.ty));
    quote!(0 #(+ #sizes)*)
}

fn max_encode_size(input: &DeriveInput) -> syn::Result<Tokens> {
    no_generics(input)?;
    let name = &input.ident;
    let size = match &input.data {
        Data::Struct(data) => fields_max_size(&data.fields),
        Data::Enum(_) => {
            let sizes = variants(input)?
                .iter()
                .map(|variant| fields_max_size(variant.fields))
                .collect::<Vec<_>>();
            quote! {{
                let sizes: &[usize] = &[#(#sizes),*];
                let mut largest = 0;
                let mut i = 0;
                while i < sizes.len() {
                    if sizes[i] > largest {
                        largest = sizes[i];
                    }
                    i += 1;
                }
                1 + largest
            }}
        }
        Data::Union(_) => return Err(Error::new_spanned(input, "unions are not supported")),
    };
    Ok(quote! {
        impl crate::codec::MaxEncodeSize for #name {
            const MAX_ENCODE_SIZE: usize = #size;
        }
    })
}

fn dispatch(input: &DeriveInput) -> syn::Result<Tokens> {
    no_generics(input)?;
    let name = &input.ident;
    let variants = variants(input)?;
    let mut methods = Vec::new();
    let mut arms = Vec::new();
    let mut names = Vec::new();
    let mut indices = Vec::new();
    for variant in &variants {
        let (pattern, bound) = bindings(variant.fields);
        let method = format_ident!("{}", variant.name.to_string().to_snake_case());
        let parameters = variant.fields.iter().zip(&bound).map(|(field, binding)| {
            let ty = &field.ty;
            quote!(#binding: &#ty)
        });
        let variant_name = variant.name;
        let doc = format!("Handles [`{name}::{variant_name}`].");
        methods.push(quote! {
            #[doc = #doc]
            fn #method(
                ctx: &mut C,
                #(#parameters),*
            ) -> impl ::core::future::Future<Output = crate::DispatchResult> + Send;
        });
        arms.push(quote!(Self::#variant_name #pattern => H::#method(ctx, #(#bound),*).await));
        let text = variant_name.to_string();
        names.push(quote!(Self::#variant_name { .. } => #text));
        let index = &variant.index;
        indices.push(quote!(Self::#variant_name { .. } => #index));
    }
    let trait_doc = format!(
        "Handlers of [`{name}`]: one method per call, named after it (generated by `Dispatch`)."
    );
    Ok(quote! {
        #[doc = #trait_doc]
        pub trait CallHandler<C: ?Sized + Send> {
            #(#methods)*
        }

        impl #name {
            /// Routes the call to its handler in `H` (the context carries who calls).
            pub async fn dispatch<C: ?Sized + Send, H: CallHandler<C>>(
                &self,
                ctx: &mut C,
            ) -> crate::DispatchResult {
                match self { #(#arms,)* }
            }

            /// The call's name (its variant).
            pub const fn name(&self) -> &'static str {
                match self { #(#names,)* }
            }

            /// The call's index within its module (the byte after the module index on the wire).
            pub const fn index(&self) -> u8 {
                match self { #(#indices,)* }
            }
        }
    })
}

fn module_error(input: &DeriveInput) -> syn::Result<Tokens> {
    no_generics(input)?;
    let name = &input.ident;
    let attr = input
        .attrs
        .iter()
        .find(|attr| attr.path().is_ident("module_error"))
        .ok_or_else(|| {
            Error::new_spanned(input, "needs #[module_error(index = EXPR, name = EXPR)]")
        })?;
    let mut module_index: Option<Expr> = None;
    let mut module_name: Option<Expr> = None;
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("index") {
            module_index = Some(meta.value()?.parse()?);
            Ok(())
        } else if meta.path.is_ident("name") {
            module_name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("expected `index` or `name`"))
        }
    })?;
    let (Some(module_index), Some(module_name)) = (module_index, module_name) else {
        return Err(Error::new_spanned(
            attr,
            "both `index` and `name` are needed",
        ));
    };
    let variants = variants(input)?;
    let checks = distinct_indices(name, &variants);
    let indices = variants.iter().map(|variant| {
        let (variant_name, index) = (variant.name, &variant.index);
        quote!(Self::#variant_name { .. } => #index)
    });
    let names = variants.iter().map(|variant| {
        let variant_name = variant.name;
        let text = variant_name.to_string();
        quote!(Self::#variant_name { .. } => #text)
    });
    let all = variants.iter().map(|variant| &variant.index);
    let reserved = format!("an error of {name} uses index 255, reserved for BadOrigin");
    Ok(quote! {
        #checks

        // Error index 255 is the framework's `BadOrigin` in every module's receipts.
        const _: () = {
            let indices: &[u8] = &[#(#all),*];
            let mut i = 0;
            while i < indices.len() {
                assert!(indices[i] != crate::BAD_ORIGIN_ERROR, #reserved);
                i += 1;
            }
        };

        impl #name {
            /// Index of the module that raises these errors.
            pub const MODULE: u8 = #module_index;
            /// Name of the module that raises these errors.
            pub const MODULE_NAME: &'static str = #module_name;

            /// The error's stable index within its module.
            pub const fn index(&self) -> u8 {
                match self { #(#indices,)* }
            }

            /// The error's name (its variant).
            pub const fn name(&self) -> &'static str {
                match self { #(#names,)* }
            }
        }

        impl ::core::convert::From<#name> for crate::DispatchError {
            fn from(error: #name) -> Self {
                crate::DispatchError::Module(crate::ModuleError {
                    module: #name::MODULE,
                    module_name: #name::MODULE_NAME,
                    error: error.index(),
                    error_name: error.name(),
                    message: error.to_string(),
                })
            }
        }
    })
}
