//! `#[derive(Message)]` for pifork: the library's `Message` codec for a type of your own.
//! Use it through `pifork::Message` with pifork's `derive` feature on; the generated code
//! names only absolute paths (`::pifork::message::Message`, `::pifork::Error`).

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{
    Data, DataEnum, DataStruct, DeriveInput, Fields, GenericParam, Ident, Index, parse_macro_input,
    parse_quote,
};

/// Derives `pifork::message::Message` for a struct or an enum.
///
/// Wire format, in the codec's own terms (little-endian scalars, length-prefixed sequences):
///
/// - a struct (named, tuple or unit) is its fields in declaration order, nothing before or
///   between them: a unit struct is no bytes at all;
/// - an enum is the variant's index among the declared variants (0 for the first, whatever
///   explicit discriminants say) as a `u32` in little-endian, then that variant's fields in
///   declaration order;
/// - decoding an index the enum does not have is `Error::Decode { reason: "unknown variant" }`,
///   and input that ends early is `Error::Decode { reason: "truncated" }`, as for the built-in
///   types; an enum without variants never decodes.
///
/// Every type parameter gets a `T: Message` bound. Reordering fields or variants changes the
/// encoding: both sides of a pipe must be built from the same definition.
///
/// Unions and `#[repr(packed)]` types are refused at compile time (a union does not say which
/// field it holds; a packed field cannot be borrowed to be encoded).
#[proc_macro_derive(Message)]
pub fn derive_message(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(mut input: DeriveInput) -> syn::Result<TokenStream> {
    for attr in &input.attrs {
        if attr.path().is_ident("repr") {
            let mut packed = false;
            attr.parse_nested_meta(|meta| {
                packed |= meta.path.is_ident("packed");
                if meta.input.peek(syn::token::Paren) {
                    let _: TokenStream = meta.input.parse::<proc_macro2::Group>()?.stream();
                }
                Ok(())
            })?;
            if packed {
                return Err(syn::Error::new_spanned(
                    attr,
                    "#[derive(Message)] does not support #[repr(packed)]: a packed field \
                     cannot be borrowed to be encoded",
                ));
            }
        }
    }
    // Hygienic names for the generated locals: a field called `out` shadows nothing.
    let out = Ident::new("out", Span::mixed_site());
    let input_ident = Ident::new("input", Span::mixed_site());
    let (encode, decode) = match &input.data {
        Data::Struct(data) => struct_bodies(data, &out, &input_ident),
        Data::Enum(data) => enum_bodies(data, &out, &input_ident),
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "#[derive(Message)] does not support unions: the bytes would not say which \
                 field is set; use an enum",
            ));
        }
    };
    // A struct's encoding is its fields' end to end: of a fixed length when each is, and
    // then written field by field at fixed places.
    let size = match &input.data {
        Data::Struct(data) => {
            let types: Vec<_> = data.fields.iter().map(|f| &f.ty).collect();
            let (pattern, names) = bindings(&data.fields);
            let unpack = if names.is_empty() {
                TokenStream::new()
            } else {
                quote!(let Self #pattern = self;)
            };
            let at = Ident::new("at", Span::mixed_site());
            let len = Ident::new("len", Span::mixed_site());
            quote! {
                const SIZE: ::std::option::Option<usize> = ::pifork::message::sum_sizes(&[
                    #(<#types as ::pifork::message::Message>::SIZE),*
                ]);
                #[inline]
                fn encode_fixed(&self, #out: &mut [u8]) {
                    if <Self as ::pifork::message::Message>::SIZE
                        != ::std::option::Option::Some(#out.len())
                    {
                        return ::pifork::message::encode_by_buffer(self, #out);
                    }
                    #unpack
                    let mut #at = 0usize;
                    #(
                        let #len = <#types as ::pifork::message::Message>::SIZE.unwrap_or(0);
                        ::pifork::message::Message::encode_fixed(
                            #names,
                            &mut #out[#at..#at + #len],
                        );
                        #at += #len;
                    )*
                    let _ = #at;
                }
            }
        }
        _ => TokenStream::new(),
    };
    for param in &mut input.generics.params {
        if let GenericParam::Type(ty) = param {
            ty.bounds.push(parse_quote!(::pifork::message::Message));
        }
    }
    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::pifork::message::Message for #name #ty_generics #where_clause {
            #size
            fn encode(&self, #out: &mut ::std::vec::Vec<u8>) {
                #encode
            }
            fn decode(#input_ident: &mut &[u8]) -> ::pifork::Result<Self> {
                #decode
            }
        }
    })
}

/// The bindings of `fields` in a pattern (`{ a: f0, b: f1 }`, `(f0, f1)` or nothing) and
/// their names.
fn bindings(fields: &Fields) -> (TokenStream, Vec<Ident>) {
    let names: Vec<Ident> =
        (0..fields.len()).map(|i| format_ident!("field{}", i, span = Span::mixed_site())).collect();
    let pattern = match fields {
        Fields::Named(named) => {
            let keys = named.named.iter().map(|f| f.ident.as_ref().expect("named field"));
            quote!({ #(#keys: #names),* })
        }
        Fields::Unnamed(_) => quote!(( #(#names),* )),
        Fields::Unit => TokenStream::new(),
    };
    (pattern, names)
}

/// An expression that decodes `fields` in declaration order into `path` (a struct or variant).
fn construct(path: TokenStream, fields: &Fields, input: &Ident) -> TokenStream {
    let decode = quote!(::pifork::message::Message::decode(#input)?);
    match fields {
        Fields::Named(named) => {
            let keys = named.named.iter().map(|f| f.ident.as_ref().expect("named field"));
            quote!(#path { #(#keys: #decode),* })
        }
        Fields::Unnamed(unnamed) => {
            let keys = (0..unnamed.unnamed.len()).map(Index::from);
            quote!(#path { #(#keys: #decode),* })
        }
        Fields::Unit => path,
    }
}

fn struct_bodies(data: &DataStruct, out: &Ident, input: &Ident) -> (TokenStream, TokenStream) {
    let (pattern, names) = bindings(&data.fields);
    let encode = if names.is_empty() {
        quote!(let _ = #out;)
    } else {
        quote! {
            let Self #pattern = self;
            #(::pifork::message::Message::encode(#names, #out);)*
        }
    };
    let value = construct(quote!(Self), &data.fields, input);
    let decode = if names.is_empty() {
        quote! {
            let _ = #input;
            ::std::result::Result::Ok(#value)
        }
    } else {
        quote!(::std::result::Result::Ok(#value))
    };
    (encode, decode)
}

fn enum_bodies(data: &DataEnum, out: &Ident, input: &Ident) -> (TokenStream, TokenStream) {
    let tag = Ident::new("tag", Span::mixed_site());
    let unknown = quote! {
        ::std::result::Result::Err(::pifork::Error::Decode { reason: "unknown variant" })
    };
    if data.variants.is_empty() {
        let encode = quote! {
            let _ = #out;
            match *self {}
        };
        let decode = quote! {
            let _: u32 = ::pifork::message::Message::decode(#input)?;
            #unknown
        };
        return (encode, decode);
    }
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    for (index, variant) in data.variants.iter().enumerate() {
        let index = u32::try_from(index).expect("fewer than 2^32 variants");
        let ident = &variant.ident;
        let (pattern, names) = bindings(&variant.fields);
        encode_arms.push(quote! {
            Self::#ident #pattern => {
                ::pifork::message::Message::encode(&#index, #out);
                #(::pifork::message::Message::encode(#names, #out);)*
            }
        });
        let value = construct(quote!(Self::#ident), &variant.fields, input);
        decode_arms.push(quote!(#index => ::std::result::Result::Ok(#value),));
    }
    let encode = quote! {
        match self {
            #(#encode_arms)*
        }
    };
    let decode = quote! {
        let #tag: u32 = ::pifork::message::Message::decode(#input)?;
        match #tag {
            #(#decode_arms)*
            _ => #unknown,
        }
    };
    (encode, decode)
}
