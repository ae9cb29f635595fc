//! Templates: literal text with `$` variables, parsed once at load into segments.
//!
//! Syntax: `$ci`, `$(ci)` (when letters follow), `$hdr(Name)`, `$var(name)`, `$$` for a literal
//! `$`. Rendering appends bytes to a caller's buffer; a variable with no value (a header the
//! message lacks, an unset `$var`) renders as nothing.

use super::host::{GwField, Host};
use super::program::{HeaderName, VarId};
use sipshard_parser::sip::StartLine;
use std::borrow::Cow;

/// The built-in variables, as written after `$`.
pub(crate) const VARIABLES: &[(&str, &str)] = &[
    ("ci", "Call-ID"),
    ("fu", "From URI"),
    ("tu", "To URI"),
    ("ru", "Request-URI"),
    ("rm", "method (CSeq method for a response)"),
    ("rs", "status code of a response"),
    ("rr", "reason phrase of a response"),
    ("si", "source IP"),
    ("sp", "source port"),
    ("cs", "CSeq number"),
    ("ft", "From tag"),
    ("tt", "To tag"),
    ("br", "branch of the top Via"),
    ("shard", "shard number"),
    ("uid", "a fresh unique id"),
    ("hdr(Name)", "first value of header Name"),
    ("var(name)", "per-message variable"),
    (
        "gw(field)",
        "a gateway event's field in gw:* routes: key, from_uri, to_uri, ruri, code, reason, cause, msgid",
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Lit(Box<[u8]>),
    CallId,
    FromUri,
    ToUri,
    RUri,
    Method,
    Status,
    Reason,
    SourceIp,
    SourcePort,
    CSeq,
    FromTag,
    ToTag,
    Branch,
    Shard,
    Uid,
    Hdr(HeaderName),
    Var(VarId),
    Gw(GwField),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    segs: Box<[Seg]>,
}

/// What is wrong with a template, and where (byte offset in the template text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    pub offset: usize,
    pub message: String,
}

fn err(offset: usize, message: String) -> TemplateError {
    TemplateError { offset, message }
}

impl Template {
    /// Parses `s`. `var` is called for every `$var(name)` with the name and its offset, and
    /// returns the variable's id.
    pub fn parse(
        s: &str,
        var: &mut dyn FnMut(&str, usize) -> VarId,
    ) -> Result<Template, TemplateError> {
        let b = s.as_bytes();
        let mut segs = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            let start = i;
            i += 1;
            let seg = match b.get(i) {
                Some(b'$') => {
                    lit.push(b'$');
                    i += 1;
                    continue;
                }
                Some(b'(') => {
                    let close = s[i..]
                        .find(')')
                        .map(|c| i + c)
                        .ok_or_else(|| err(start, "`$(` without a closing `)`".to_owned()))?;
                    let name = &s[i + 1..close];
                    i = close + 1;
                    simple(name).ok_or_else(|| unknown(start, name))?
                }
                Some(c) if c.is_ascii_alphabetic() => {
                    let name_start = i;
                    while i < b.len() && b[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                    let name = &s[name_start..i];
                    match name {
                        "gw" => {
                            let close = (b.get(i) == Some(&b'('))
                                .then(|| s[i..].find(')').map(|c| i + c))
                                .flatten()
                                .ok_or_else(|| err(start, "`$gw` needs `(field)`".to_owned()))?;
                            let arg = &s[i + 1..close];
                            i = close + 1;
                            Seg::Gw(GwField::from_name(arg).ok_or_else(|| {
                                err(
                                    start,
                                    format!(
                                        "`$gw({arg})`: no such field (fields: {})",
                                        GwField::ALL
                                            .iter()
                                            .map(|(n, _)| *n)
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                )
                            })?)
                        }
                        "hdr" | "var" => {
                            if b.get(i) != Some(&b'(') {
                                return Err(err(start, format!("`${name}` needs `(name)`")));
                            }
                            let close = s[i..].find(')').map(|c| i + c).ok_or_else(|| {
                                err(start, format!("`${name}(` without a closing `)`"))
                            })?;
                            let arg = &s[i + 1..close];
                            i = close + 1;
                            if name == "hdr" {
                                if arg.is_empty() || !arg.bytes().all(is_token) {
                                    return Err(err(
                                        start,
                                        format!("`$hdr({arg})`: not a header name"),
                                    ));
                                }
                                Seg::Hdr(HeaderName::new(arg))
                            } else {
                                if arg.is_empty()
                                    || !arg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                                {
                                    return Err(err(
                                        start,
                                        format!(
                                            "`$var({arg})`: a variable name is letters, digits \
                                             and `_`"
                                        ),
                                    ));
                                }
                                Seg::Var(var(arg, start))
                            }
                        }
                        _ => simple(name).ok_or_else(|| unknown(start, name))?,
                    }
                }
                _ => {
                    return Err(err(
                        start,
                        "`$` must start a variable (write `$$` for a literal `$`)".to_owned(),
                    ))
                }
            };
            if !lit.is_empty() {
                segs.push(Seg::Lit(std::mem::take(&mut lit).into()));
            }
            segs.push(seg);
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit.into()));
        }
        Ok(Template { segs: segs.into() })
    }

    /// The variable, when the template is exactly `$var(NAME)`.
    pub fn as_var(&self) -> Option<VarId> {
        match &*self.segs {
            [Seg::Var(v)] => Some(*v),
            _ => None,
        }
    }

    /// The text, when the template has no variables.
    pub fn as_literal(&self) -> Option<&[u8]> {
        match &*self.segs {
            [] => Some(b""),
            [Seg::Lit(l)] => Some(l),
            _ => None,
        }
    }

    #[cfg(test)]
    pub fn segments(&self) -> &[Seg] {
        &self.segs
    }

    /// The rendered template, borrowed where it is a literal or one variable (a reply's reason
    /// phrase and most of its header values): no buffer for those.
    pub fn render_cow<'a, H: Host + ?Sized>(
        &'a self,
        host: &mut H,
        vars: &'a [Vec<u8>],
    ) -> Cow<'a, [u8]> {
        if let Some(l) = self.as_literal() {
            return Cow::Borrowed(l);
        }
        if let Some(v) = self.as_var().and_then(|v| vars.get(v.0 as usize)) {
            return Cow::Borrowed(v);
        }
        let mut out = Vec::new();
        self.render(host, vars, &mut out);
        Cow::Owned(out)
    }

    /// Appends the rendered template to `out`.
    pub fn render<H: Host + ?Sized>(&self, host: &mut H, vars: &[Vec<u8>], out: &mut Vec<u8>) {
        // Room for the whole value at once (a uid or a header value is rarely longer than 32
        // bytes): rendering into an empty vector otherwise grows it a few times.
        let hint: usize = self
            .segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => l.len(),
                _ => 32,
            })
            .sum();
        out.reserve(hint);
        for seg in self.segs.iter() {
            match seg {
                Seg::Lit(l) => out.extend_from_slice(l),
                Seg::Uid => host.write_uid(out),
                Seg::Var(v) => {
                    if let Some(v) = vars.get(v.0 as usize) {
                        out.extend_from_slice(v);
                    }
                }
                Seg::Shard => {
                    crate::wire::dec(out, host.shard());
                }
                Seg::Gw(f) => host.event_field(*f, out),
                Seg::SourceIp => {
                    crate::wire::ip(out, host.source().ip());
                }
                Seg::SourcePort => {
                    crate::wire::dec(out, host.source().port());
                }
                other => render_msg(other, host, out),
            }
        }
    }
}

fn render_msg<H: Host + ?Sized>(seg: &Seg, host: &H, out: &mut Vec<u8>) {
    let m = host.message();
    let bytes: Option<&[u8]> = match seg {
        Seg::CallId => m.call_id(),
        Seg::FromUri => m.from().map(|na| na.uri.raw),
        Seg::ToUri => m.to().map(|na| na.uri.raw),
        Seg::RUri => match m.start_line() {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        },
        Seg::Method => m.method().or(m.cseq().map(|c| c.method)),
        Seg::Reason => match m.start_line() {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        },
        Seg::FromTag => m.from_tag(),
        Seg::ToTag => m.to_tag(),
        Seg::Branch => m.branch(),
        Seg::Hdr(name) => m
            .headers()
            .iter()
            .find(|h| name.matches(h))
            .map(|h| h.value),
        Seg::Status => {
            if let Some(c) = m.status_code() {
                crate::wire::dec(out, c);
            }
            None
        }
        Seg::CSeq => {
            if let Some(c) = m.cseq() {
                crate::wire::dec(out, c.number);
            }
            None
        }
        _ => None,
    };
    if let Some(b) = bytes {
        out.extend_from_slice(b);
    }
}

fn simple(name: &str) -> Option<Seg> {
    Some(match name {
        "ci" => Seg::CallId,
        "fu" => Seg::FromUri,
        "tu" => Seg::ToUri,
        "ru" => Seg::RUri,
        "rm" => Seg::Method,
        "rs" => Seg::Status,
        "rr" => Seg::Reason,
        "si" => Seg::SourceIp,
        "sp" => Seg::SourcePort,
        "cs" => Seg::CSeq,
        "ft" => Seg::FromTag,
        "tt" => Seg::ToTag,
        "br" => Seg::Branch,
        "shard" => Seg::Shard,
        "uid" => Seg::Uid,
        _ => return None,
    })
}

fn unknown(offset: usize, name: &str) -> TemplateError {
    let known: Vec<&str> = VARIABLES.iter().map(|(n, _)| *n).collect();
    err(
        offset,
        format!(
            "unknown variable `${name}` (known: ${}; `$$` is a literal `$`)",
            known.join(", $")
        ),
    )
}

/// RFC 3261 token characters (header names).
pub(crate) fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}
