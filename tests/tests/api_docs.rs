//! The API reference in `docs/api/` is generated from the comments of `proto/`, so the two can
//! never disagree: this test renders every Tally package and fails (after rewriting the page)
//! when a committed page differs from what the protos say. Run `cargo test --test api_docs`
//! and commit the pages it rewrote.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::source_code_info::Location;
use prost_types::{
    DescriptorProto, EnumDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    FileDescriptorSet, ServiceDescriptorProto,
};

/// Field numbers of `FileDescriptorProto` and friends, as source-code-info paths use them.
mod path {
    pub const PACKAGE: i32 = 2;
    pub const MESSAGE: i32 = 4;
    pub const ENUM: i32 = 5;
    pub const SERVICE: i32 = 6;
    pub const SYNTAX: i32 = 12;
    pub const MESSAGE_FIELD: i32 = 2;
    pub const MESSAGE_NESTED: i32 = 3;
    pub const MESSAGE_ENUM: i32 = 4;
    pub const ENUM_VALUE: i32 = 2;
    pub const SERVICE_METHOD: i32 = 2;
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/api")
}

#[test]
fn api_reference_is_generated_from_the_protos() {
    let set = FileDescriptorSet::decode(tally_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let mut stale = Vec::new();
    let mut pages = Vec::new();
    for file in set
        .file
        .iter()
        .filter(|f| f.package().starts_with("tally."))
    {
        let name = format!("{}.md", file.package());
        let page = Page::new(file).render();
        let path = docs_dir().join(&name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(page.as_str()) {
            std::fs::create_dir_all(docs_dir()).expect("docs/api");
            std::fs::write(&path, &page).expect("write the page");
            stale.push(name.clone());
        }
        pages.push(name);
    }
    for (path, page) in [
        (docs_dir().join("README.md"), render_index(&set, &pages)),
        (docs_dir().join("../errors.md"), render_errors()),
    ] {
        if std::fs::read_to_string(&path).ok().as_deref() != Some(page.as_str()) {
            std::fs::write(&path, &page).expect("write the page");
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "docs/api was out of date and has been rewritten ({}): review and commit it",
        stale.join(", ")
    );
}

#[test]
fn every_reason_says_when_it_happens() {
    for reason in tally_core::Reason::ALL {
        assert!(
            !reason.description().is_empty(),
            "{reason} has no description in tally-core's reasons! table"
        );
    }
}

/// docs/errors.md: every reason, from tally-core's `reasons!` table.
fn render_errors() -> String {
    let mut out = String::from(
        "# Errors\n\n\
         <!-- Generated from tally-core's `reasons!` table by tests/tests/api_docs.rs: do not edit. -->\n\n\
         Every error Tally returns over gRPC is a status whose details carry a `google.rpc.ErrorInfo` \
         with domain `tally` and one of the reasons below, and, when fields are at fault, a \
         `google.rpc.BadRequest` naming each of them (`records[12].quantity`). Nothing of a refused \
         request is stored.\n\n\
         The REST surface answers `{\"error\":{\"code\":..,\"message\":..}}` with the same reason as \
         `code` (Azure's codes where Azure has one: a bad time alignment or continuation token is \
         `InvalidProperty`), a message naming the parameter in REST spelling, and the HTTP status of \
         the gRPC code: INVALID_ARGUMENT and FAILED_PRECONDITION 400, UNAUTHENTICATED 401, \
         PERMISSION_DENIED 403 (but `SubscriberIdIsNotDirectTenant` 400, as Azure answers), \
         NOT_FOUND 404, ALREADY_EXISTS 409, UNAVAILABLE 503, INTERNAL 500.\n\n\
         | reason | gRPC status | when |\n| --- | --- | --- |\n",
    );
    for reason in tally_core::Reason::ALL {
        let _ = writeln!(
            out,
            "| `{reason}` | {:?} | {} |",
            tally_proto::status::code(reason.class()),
            reason.description()
        );
    }
    out
}

fn render_index(set: &FileDescriptorSet, pages: &[String]) -> String {
    let mut out = String::from(
        "# API reference\n\n\
         Generated from the comments in `proto/` by `tests/tests/api_docs.rs`; edit the protos, not \
         these pages. Errors and their reasons are described in [errors.md](../errors.md).\n\n\
         | package | services |\n| --- | --- |\n",
    );
    for (file, page) in set
        .file
        .iter()
        .filter(|f| f.package().starts_with("tally."))
        .zip(pages)
    {
        let services: Vec<&str> = file.service.iter().map(|s| s.name()).collect();
        let _ = writeln!(
            out,
            "| [`{}`]({page}) | {} |",
            file.package(),
            services.join(", ")
        );
    }
    out
}

struct Page<'a> {
    file: &'a FileDescriptorProto,
}

impl<'a> Page<'a> {
    fn new(file: &'a FileDescriptorProto) -> Self {
        Self { file }
    }

    fn location(&self, path: &[i32]) -> Option<&'a Location> {
        self.file
            .source_code_info
            .as_ref()?
            .location
            .iter()
            .find(|l| l.path == path)
    }

    /// The comment written above the element at `path`.
    fn comment(&self, path: &[i32]) -> String {
        self.location(path)
            .map(|l| clean(l.leading_comments()))
            .unwrap_or_default()
    }

    /// The comment of the whole file: the one above `syntax` or `package`.
    fn file_comment(&self) -> String {
        [[path::SYNTAX], [path::PACKAGE]]
            .iter()
            .filter_map(|p| self.location(p))
            .flat_map(|l| {
                l.leading_detached_comments
                    .iter()
                    .map(|c| clean(c))
                    .chain([clean(l.leading_comments())])
            })
            .find(|c| !c.is_empty())
            .unwrap_or_default()
    }

    fn render(&self) -> String {
        let mut out = format!(
            "# `{}`\n\n<!-- Generated from {} by tests/tests/api_docs.rs: do not edit. -->\n\n",
            self.file.package(),
            self.file.name()
        );
        paragraph(&mut out, &self.file_comment());
        if !self.file.service.is_empty() {
            out.push_str("## Services\n\n");
            for (i, service) in self.file.service.iter().enumerate() {
                self.render_service(&mut out, service, &[path::SERVICE, i as i32]);
            }
        }
        if !self.file.message_type.is_empty() {
            out.push_str("## Messages\n\n");
            for (i, message) in self.file.message_type.iter().enumerate() {
                self.render_message(&mut out, message, &[path::MESSAGE, i as i32], "");
            }
        }
        if !self.file.enum_type.is_empty() {
            out.push_str("## Enums\n\n");
            for (i, e) in self.file.enum_type.iter().enumerate() {
                self.render_enum(&mut out, e, &[path::ENUM, i as i32], "");
            }
        }
        while out.ends_with("\n\n") {
            out.pop();
        }
        out
    }

    fn render_service(&self, out: &mut String, service: &ServiceDescriptorProto, at: &[i32]) {
        let _ = writeln!(out, "### {}\n", service.name());
        paragraph(out, &self.comment(at));
        out.push_str("| RPC | request | response | what it does |\n| --- | --- | --- | --- |\n");
        for (j, method) in service.method.iter().enumerate() {
            let stream = |yes: bool| if yes { "stream " } else { "" };
            let _ = writeln!(
                out,
                "| `{}` | {}{} | {}{} | {} |",
                method.name(),
                stream(method.client_streaming()),
                self.type_link(method.input_type()),
                stream(method.server_streaming()),
                self.type_link(method.output_type()),
                cell(&self.comment(&[at, &[path::SERVICE_METHOD, j as i32]].concat()))
            );
        }
        out.push('\n');
    }

    fn render_message(&self, out: &mut String, message: &DescriptorProto, at: &[i32], outer: &str) {
        let name = format!("{outer}{}", message.name());
        if message.options.as_ref().is_some_and(|o| o.map_entry()) {
            return;
        }
        let _ = writeln!(out, "### {name}\n");
        paragraph(out, &self.comment(at));
        if !message.field.is_empty() {
            out.push_str("| field | type | description |\n| --- | --- | --- |\n");
            for (j, field) in message.field.iter().enumerate() {
                let oneof = field
                    .oneof_index
                    .filter(|_| !field.proto3_optional())
                    .and_then(|k| message.oneof_decl.get(k as usize))
                    .map(|o| format!(" (one of `{}`)", o.name()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| `{}` | {}{oneof} | {} |",
                    field.name(),
                    self.field_type(message, field),
                    cell(&self.comment(&[at, &[path::MESSAGE_FIELD, j as i32]].concat()))
                );
            }
            out.push('\n');
        }
        for (k, nested) in message.nested_type.iter().enumerate() {
            let at = [at, &[path::MESSAGE_NESTED, k as i32]].concat();
            self.render_message(out, nested, &at, &format!("{name}."));
        }
        for (k, e) in message.enum_type.iter().enumerate() {
            let at = [at, &[path::MESSAGE_ENUM, k as i32]].concat();
            self.render_enum(out, e, &at, &format!("{name}."));
        }
    }

    fn render_enum(&self, out: &mut String, e: &EnumDescriptorProto, at: &[i32], outer: &str) {
        let _ = writeln!(out, "### {outer}{}\n", e.name());
        paragraph(out, &self.comment(at));
        out.push_str("| value | number | description |\n| --- | --- | --- |\n");
        for (j, value) in e.value.iter().enumerate() {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                value.name(),
                value.number(),
                cell(&self.comment(&[at, &[path::ENUM_VALUE, j as i32]].concat()))
            );
        }
        out.push('\n');
    }

    fn field_type(&self, message: &DescriptorProto, field: &FieldDescriptorProto) -> String {
        let map_entry = message.nested_type.iter().find(|n| {
            n.options.as_ref().is_some_and(|o| o.map_entry())
                && field.type_name().ends_with(&format!(".{}", n.name()))
        });
        if let Some(entry) = map_entry {
            let kv: Vec<String> = entry
                .field
                .iter()
                .map(|f| self.field_type(entry, f))
                .collect();
            return format!("map<{}>", kv.join(", "));
        }
        let base = match field.r#type() {
            Type::Message | Type::Enum => self.type_link(field.type_name()),
            scalar => scalar_name(scalar).to_string(),
        };
        if field.label() == Label::Repeated {
            format!("repeated {base}")
        } else {
            base
        }
    }

    /// A type name, linked to its section when it is in this package.
    fn type_link(&self, full: &str) -> String {
        let own = format!(".{}.", self.file.package());
        match full.strip_prefix(&own) {
            Some(local) => format!("[`{local}`](#{})", local.replace('.', "").to_lowercase()),
            None => format!("`{}`", full.trim_start_matches('.')),
        }
    }
}

fn scalar_name(t: Type) -> &'static str {
    match t {
        Type::Double => "double",
        Type::Float => "float",
        Type::Int64 => "int64",
        Type::Uint64 => "uint64",
        Type::Int32 => "int32",
        Type::Fixed64 => "fixed64",
        Type::Fixed32 => "fixed32",
        Type::Bool => "bool",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Uint32 => "uint32",
        Type::Sfixed32 => "sfixed32",
        Type::Sfixed64 => "sfixed64",
        Type::Sint32 => "sint32",
        Type::Sint64 => "sint64",
        Type::Group | Type::Message | Type::Enum => "message",
    }
}

/// A proto comment without its per-line indentation.
fn clean(comment: &str) -> String {
    comment
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn paragraph(out: &mut String, text: &str) {
    if !text.is_empty() {
        out.push_str(text);
        out.push_str("\n\n");
    }
}

/// A comment inside a table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}
