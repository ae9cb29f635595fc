//! Header names (long and compact forms) and the typed values routing needs.
//!
//! Values are decoded lazily: the message parse checks their syntax once and keeps slices; the
//! types here turn a slice into fields when a caller asks.

use super::chars::{is_lws, is_token, parse_decimal, trim_lws};
use super::scan;
use super::uri::{params, parse_host, parse_uri, Host, Params, Uri, UriContext};

macro_rules! header_kinds {
    ($( $variant:ident => $name:literal $(, $compact:literal)? ; )*) => {
        /// The headers sipshard knows by name. Everything else is [`HeaderKind::Other`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum HeaderKind {
            $( #[doc = concat!("`", $name, "`")] $variant, )*
            /// A header sipshard has no special knowledge of.
            Other,
        }

        impl HeaderKind {
            /// The canonical (long) name, or `None` for [`HeaderKind::Other`].
            pub fn canonical_name(self) -> Option<&'static str> {
                match self {
                    $( HeaderKind::$variant => Some($name), )*
                    HeaderKind::Other => None,
                }
            }

            fn compact(c: u8) -> HeaderKind {
                $( $( if c == $compact { return HeaderKind::$variant; } )? )*
                HeaderKind::Other
            }
        }
    };
}

header_kinds! {
    Via => "Via", b'v';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    From => "From", b'f';
    To => "To", b't';
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    Contact => "Contact", b'm';
    Route => "Route";
    RecordRoute => "Record-Route";
    Expires => "Expires";
    Date => "Date";
    ContentEncoding => "Content-Encoding", b'e';
    Supported => "Supported", b'k';
    Subject => "Subject", b's';
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    SessionExpires => "Session-Expires", b'x';
    Identity => "Identity", b'y';
    AcceptContact => "Accept-Contact", b'a';
    RejectContact => "Reject-Contact", b'j';
    RequestDisposition => "Request-Disposition", b'd';
    IdentityInfo => "Identity-Info", b'n';
}

impl HeaderKind {
    /// Classifies a header name, long or compact form, case-insensitively: one dispatch on
    /// (length, first letter), then at most one comparison. Only a name made of token
    /// characters is ever classified as a known header.
    #[inline]
    pub fn from_name(name: &[u8]) -> HeaderKind {
        use HeaderKind::*;
        let Some(&first) = name.first() else {
            return Other;
        };
        let first = first.to_ascii_lowercase();
        let candidate = match (name.len(), first) {
            (1, c) => return HeaderKind::compact(c),
            (2, b't') => To,
            (3, b'v') => Via,
            (4, b'f') => From,
            (4, b'c') => CSeq,
            (4, b'd') => Date,
            (5, b'r') => Route,
            (5, b'e') => Event,
            (7, b'c') => match name[1].to_ascii_lowercase() {
                b'a' => CallId,
                _ => Contact,
            },
            (7, b'e') => Expires,
            (7, b's') => Subject,
            (8, b'i') => Identity,
            (8, b'r') => ReferTo,
            (9, b's') => Supported,
            (11, b'r') => ReferredBy,
            (12, b'm') => MaxForwards,
            (12, b'c') => ContentType,
            (12, b'r') => RecordRoute,
            (12, b'a') => AllowEvents,
            (13, b'i') => IdentityInfo,
            (14, b'c') => ContentLength,
            (14, b'a') => AcceptContact,
            (14, b'r') => RejectContact,
            (15, b's') => SessionExpires,
            (16, b'c') => ContentEncoding,
            (19, b'r') => RequestDisposition,
            _ => return Other,
        };
        match candidate.canonical_name() {
            Some(c) if name_eq_ignore_case(name, c.as_bytes()) => candidate,
            _ => Other,
        }
    }
}

/// Case-insensitive equality of any bytes with a canonical header name (ASCII letters and
/// `-`): bit 0x20 is ignored only where the name has a letter (bit 0x40 set; `-` has it
/// clear), so a letter matches its two cases and nothing else, and `-` matches only itself
/// (CR differs from it in that bit alone). A name this accepts is therefore all token
/// characters, which lets the header splitter skip its own token walk for known names.
#[inline]
fn name_eq_ignore_case(token: &[u8], name: &[u8]) -> bool {
    /// The `N` (at most 8) bytes at `i` of both, compared as one word (padded with zeros alike).
    #[inline(always)]
    fn eq<const N: usize>(t: &[u8], n: &[u8], i: usize) -> bool {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a[..N].copy_from_slice(&t[i..i + N]);
        b[..N].copy_from_slice(&n[i..i + N]);
        let (a, b) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        let m = (b & 0x4040_4040_4040_4040) >> 1;
        a | m == b | m
    }
    let n = token.len();
    if n != name.len() {
        return false;
    }
    if n >= 8 {
        // Whole words, the last one overlapping the previous.
        let mut i = 0;
        while i + 8 < n {
            if !eq::<8>(token, name, i) {
                return false;
            }
            i += 8;
        }
        return eq::<8>(token, name, n - 8);
    }
    if n >= 4 {
        return eq::<4>(token, name, 0) && eq::<4>(token, name, n - 4);
    }
    token.iter().zip(name).all(|(&a, &b)| {
        let m = (b & 0x40) >> 1;
        a | m == b | m
    })
}

/// A header as it appears in the message: name and value are slices of the message bytes. The
/// value has surrounding white space removed; a folded value keeps its inner CRLF + WSP bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    /// The name as sent.
    pub name: &'b [u8],
    /// The value as sent (see above).
    pub value: &'b [u8],
    /// What the name means.
    pub kind: HeaderKind,
}

/// An empty header, to initialise header arrays.
pub const EMPTY_HEADER: Header<'static> = Header {
    name: b"",
    value: b"",
    kind: HeaderKind::Other,
};

/// A header value is syntactically wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueError;

/// A small cursor over a header value, skipping LWS where the grammar allows it.
struct Cursor<'b> {
    s: &'b [u8],
    i: usize,
}

impl<'b> Cursor<'b> {
    fn new(s: &'b [u8]) -> Self {
        Cursor { s, i: 0 }
    }
    fn skip_lws(&mut self) {
        while self.i < self.s.len() && is_lws(self.s[self.i]) {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn token(&mut self) -> Option<&'b [u8]> {
        let start = self.i;
        while self.i < self.s.len() && is_token(self.s[self.i]) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn rest(&self) -> &'b [u8] {
        &self.s[self.i.min(self.s.len())..]
    }
    /// A quoted string starting at the cursor; returns the inside (escapes kept).
    fn quoted(&mut self) -> Option<&'b [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.i;
        while self.i < self.s.len() {
            match self.s[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    let inner = &self.s[start..self.i];
                    self.i += 1;
                    return Some(inner);
                }
                _ => self.i += 1,
            }
        }
        None
    }
    /// `*( SEMI generic-param )`: validates and returns the raw parameter text (after the
    /// first `;`), up to the end or `stop`.
    fn generic_params(&mut self, stop: Option<u8>) -> Result<&'b [u8], ValueError> {
        self.generic_params_with(stop, |_, _| {})
    }

    /// As `generic_params`, calling `seen(name, value)` for every parameter.
    fn generic_params_with(
        &mut self,
        stop: Option<u8>,
        mut seen: impl FnMut(&'b [u8], Option<&'b [u8]>),
    ) -> Result<&'b [u8], ValueError> {
        self.skip_lws();
        let start = self.i;
        let mut any = false;
        while self.eat(b';') {
            any = true;
            self.skip_lws();
            let name = self.token().ok_or(ValueError)?;
            self.skip_lws();
            let mut value = None;
            if self.eat(b'=') {
                self.skip_lws();
                let vstart = self.i;
                if self.peek() == Some(b'"') {
                    self.quoted().ok_or(ValueError)?;
                } else if self.peek() == Some(b'[') {
                    let (_, n) = parse_host(self.rest()).ok_or(ValueError)?;
                    self.i += n;
                } else {
                    // token, or an unbracketed IPv6address (`received`, RFC 3261 §20.42).
                    let start = self.i;
                    while self.peek().is_some_and(|b| is_token(b) || b == b':') {
                        self.i += 1;
                    }
                    if self.i == start {
                        return Err(ValueError);
                    }
                }
                value = Some(&self.s[vstart..self.i]);
                self.skip_lws();
            }
            seen(name, value);
        }
        if !self.at_end() && (stop.is_none() || self.peek() != stop) {
            return Err(ValueError);
        }
        Ok(if any { &self.s[start + 1..self.i] } else { &[] })
    }
}

/// A name-addr or addr-spec with its header parameters: From, To, Contact, Route, Record-Route,
/// Refer-To (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'b> {
    /// The display name: the inside of a quoted string (escapes kept) or the tokens as sent.
    pub display_name: Option<&'b [u8]>,
    /// Whether the display name was a quoted string (its `\` escapes are still in place).
    pub display_name_quoted: bool,
    /// The URI.
    pub uri: Uri<'b>,
    /// The header parameters after the URI, raw, without the leading `;`.
    pub params: &'b [u8],
}

impl<'b> NameAddr<'b> {
    /// Parses one name-addr / addr-spec value; `rest` gets what follows (`,` for lists).
    pub fn parse(s: &'b [u8]) -> Result<NameAddr<'b>, ValueError> {
        let (na, used) = Self::parse_prefix(s, None)?;
        if used != s.len() {
            return Err(ValueError);
        }
        Ok(na)
    }

    /// Parses a name-addr at the start of `s`, stopping at `stop` (a list separator) or the end.
    fn parse_prefix(s: &'b [u8], stop: Option<u8>) -> Result<(NameAddr<'b>, usize), ValueError> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let mut display_name = None;
        let mut quoted = false;
        let has_angle;
        if c.peek() == Some(b'"') {
            display_name = Some(c.quoted().ok_or(ValueError)?);
            quoted = true;
            c.skip_lws();
            if !c.eat(b'<') {
                return Err(ValueError);
            }
            has_angle = true;
        } else if c.peek() == Some(b'<') {
            c.i += 1;
            has_angle = true;
        } else {
            // Either display-name tokens followed by '<', or an addr-spec.
            let start = c.i;
            let mut j = c.i;
            let mut last_tok_end = start;
            while j < s.len() && (is_token(s[j]) || is_lws(s[j])) {
                if is_token(s[j]) {
                    last_tok_end = j + 1;
                }
                j += 1;
            }
            if s.get(j) == Some(&b'<') {
                if last_tok_end > start {
                    display_name = Some(&s[start..last_tok_end]);
                }
                c.i = j + 1;
                has_angle = true;
            } else {
                has_angle = false;
            }
        }
        let uri = if has_angle {
            // RFC 4475 §3.1.2.14: no LWS inside the brackets. One search finds `>` or the first
            // byte at or below SP: LWS, or a control byte no URI accepts, so refusing it here
            // gives the verdict parse_uri would.
            let rest = c.rest();
            let close = scan::find_lt_or(rest, 0x21, b'>').ok_or(ValueError)?;
            if rest[close] != b'>' {
                return Err(ValueError);
            }
            let raw = &rest[..close];
            let uri = parse_uri(raw, UriContext::NameAddr).map_err(|_| ValueError)?;
            c.i += close + 1;
            uri
        } else {
            let rest = c.rest();
            let mut end = 0;
            while end < rest.len()
                && !is_lws(rest[end])
                && rest[end] != b';'
                && Some(rest[end]) != stop
            {
                end += 1;
            }
            let uri = parse_uri(&rest[..end], UriContext::AddrSpec).map_err(|_| ValueError)?;
            c.i += end;
            uri
        };
        let params = c.generic_params(stop)?;
        Ok((
            NameAddr {
                display_name,
                display_name_quoted: quoted,
                uri,
                params,
            },
            c.i,
        ))
    }

    /// The value of header parameter `name` (`Some(None)` for a flag parameter).
    pub fn param(&self, name: &str) -> Option<Option<&'b [u8]>> {
        params(self.params)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The `tag` parameter (From and To).
    pub fn tag(&self) -> Option<&'b [u8]> {
        self.param("tag").flatten()
    }

    /// The display name with quoted-pair escapes (`\"`, `\\`) undone.
    pub fn display_name_text(&self) -> Option<std::borrow::Cow<'b, [u8]>> {
        let d = self.display_name?;
        if !self.display_name_quoted || memchr::memchr(b'\\', d).is_none() {
            return Some(std::borrow::Cow::Borrowed(d));
        }
        let mut out = Vec::with_capacity(d.len());
        let mut i = 0;
        while i < d.len() {
            if d[i] == b'\\' && i + 1 < d.len() {
                i += 1;
            }
            out.push(d[i]);
            i += 1;
        }
        Some(std::borrow::Cow::Owned(out))
    }
}

/// An iterator over the comma-separated name-addrs of a Contact, Route or Record-Route value.
#[derive(Debug, Clone)]
pub struct NameAddrs<'b> {
    rest: &'b [u8],
}

impl<'b> NameAddrs<'b> {
    /// Iterates the entries of one header value.
    pub fn new(value: &'b [u8]) -> Self {
        NameAddrs { rest: value }
    }
}

impl<'b> Iterator for NameAddrs<'b> {
    type Item = Result<NameAddr<'b>, ValueError>;
    fn next(&mut self) -> Option<Self::Item> {
        if trim_lws(self.rest).is_empty() {
            return None;
        }
        match NameAddr::parse_prefix(self.rest, Some(b',')) {
            Ok((na, used)) => {
                let after = &self.rest[used..];
                if after.first() == Some(&b',') {
                    let next = &after[1..];
                    if trim_lws(next).is_empty() {
                        self.rest = &[];
                        return Some(Err(ValueError));
                    }
                    self.rest = next;
                } else {
                    self.rest = &[];
                }
                Some(Ok(na))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'b> {
    /// Protocol name, normally `SIP`.
    pub protocol: &'b [u8],
    /// Protocol version, normally `2.0`.
    pub version: &'b [u8],
    /// Transport token (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any other token).
    pub transport: &'b [u8],
    /// sent-by host.
    pub host: Host<'b>,
    /// sent-by port.
    pub port: Option<u16>,
    /// The parameters, raw, without the leading `;`.
    pub params: &'b [u8],
    branch: Option<&'b [u8]>,
    received: Option<&'b [u8]>,
    rport: Option<Option<u16>>,
}

impl<'b> Via<'b> {
    fn parse_prefix(s: &'b [u8]) -> Result<(Via<'b>, usize), ValueError> {
        let mut c = Cursor::new(s);
        c.skip_lws();
        let protocol = c.token().ok_or(ValueError)?;
        c.skip_lws();
        if !c.eat(b'/') {
            return Err(ValueError);
        }
        c.skip_lws();
        let version = c.token().ok_or(ValueError)?;
        c.skip_lws();
        if !c.eat(b'/') {
            return Err(ValueError);
        }
        c.skip_lws();
        let transport = c.token().ok_or(ValueError)?;
        // LWS is required between sent-protocol and sent-by.
        let before = c.i;
        c.skip_lws();
        if c.i == before {
            return Err(ValueError);
        }
        let (host, n) = parse_host(c.rest()).ok_or(ValueError)?;
        c.i += n;
        let mut port = None;
        c.skip_lws();
        if c.eat(b':') {
            c.skip_lws();
            let start = c.i;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
            port = Some(parse_decimal(&s[start..c.i], 65535).ok_or(ValueError)? as u16);
        }
        let (mut branch, mut received, mut rport) = (None, None, None);
        let params = c.generic_params_with(Some(b','), |name, value| {
            if name.eq_ignore_ascii_case(b"branch") {
                branch.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"received") {
                received.get_or_insert(value);
            } else if name.eq_ignore_ascii_case(b"rport") {
                rport.get_or_insert(value.and_then(|v| parse_decimal(v, 65535).map(|p| p as u16)));
            }
        })?;
        Ok((
            Via {
                protocol,
                version,
                transport,
                host,
                port,
                params,
                branch: branch.flatten(),
                received: received.flatten(),
                rport,
            },
            c.i,
        ))
    }

    /// Parses a single Via value.
    pub fn parse(s: &'b [u8]) -> Result<Via<'b>, ValueError> {
        let (v, used) = Self::parse_prefix(s)?;
        if used != s.len() {
            return Err(ValueError);
        }
        Ok(v)
    }

    /// The value of parameter `name` (`Some(None)` for a flag parameter).
    pub fn param(&self, name: &str) -> Option<Option<&'b [u8]>> {
        params(self.params)
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// All parameters.
    pub fn params(&self) -> Params<'b> {
        params(self.params)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'b [u8]> {
        self.branch
    }

    /// The `received` parameter (an IPv6 value may come with or without brackets, RFC 5118 §4.5).
    pub fn received(&self) -> Option<&'b [u8]> {
        self.received
    }

    /// The `rport` parameter: `Some(None)` when present without a value (RFC 3581 request).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.rport
    }
}

/// An iterator over the comma-separated values of one Via header.
#[derive(Debug, Clone)]
pub struct Vias<'b> {
    rest: &'b [u8],
}

impl<'b> Vias<'b> {
    /// Iterates the Via values of one header value.
    pub fn new(value: &'b [u8]) -> Self {
        Vias { rest: value }
    }
}

impl<'b> Iterator for Vias<'b> {
    type Item = Result<Via<'b>, ValueError>;
    fn next(&mut self) -> Option<Self::Item> {
        if trim_lws(self.rest).is_empty() {
            return None;
        }
        match Via::parse_prefix(self.rest) {
            Ok((v, used)) => {
                let after = &self.rest[used..];
                if after.first() == Some(&b',') {
                    let next = &after[1..];
                    if trim_lws(next).is_empty() {
                        self.rest = &[];
                        return Some(Err(ValueError));
                    }
                    self.rest = next;
                } else {
                    self.rest = &[];
                }
                Some(Ok(v))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'b> {
    /// The sequence number (at most 2^31 - 1 when sent by a conforming UA, at most 2^32 - 1 here).
    pub number: u32,
    /// The method, case as sent.
    pub method: &'b [u8],
}

impl<'b> CSeq<'b> {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'b [u8]) -> Result<CSeq<'b>, ValueError> {
        // One walk (the parse reads every CSeq): LWS, digits read as they come, the LWS the
        // grammar requires, then the method with trailing LWS dropped.
        let n = s.len();
        let mut i = 0;
        while i < n && is_lws(s[i]) {
            i += 1;
        }
        let digits = i;
        let mut number: u64 = 0;
        while i < n {
            let d = s[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            number = number * 10 + u64::from(d);
            if number > u64::from(u32::MAX) {
                return Err(ValueError);
            }
            i += 1;
        }
        if i == digits {
            return Err(ValueError);
        }
        let gap = i;
        while i < n && is_lws(s[i]) {
            i += 1;
        }
        let mut end = n;
        while end > i && is_lws(s[end - 1]) {
            end -= 1;
        }
        let method = &s[i..end];
        if i == gap || method.is_empty() || !method.iter().all(|&c| is_token(c)) {
            return Err(ValueError);
        }
        Ok(CSeq {
            number: number as u32,
            method,
        })
    }
}

/// Checks a Call-ID value: `word [ "@" word ]` (RFC 3261 §25).
pub(crate) fn check_call_id(v: &[u8]) -> Result<(), ValueError> {
    let (a, b) = match scan::find(v, b'@') {
        Some(at) => (&v[..at], Some(&v[at + 1..])),
        None => (v, None),
    };
    let word = |w: &[u8]| !w.is_empty() && w.iter().all(|&c| super::chars::is_word(c));
    if word(a) && b.is_none_or(word) {
        Ok(())
    } else {
        Err(ValueError)
    }
}

/// Checks a media type: `type "/" subtype *( SEMI m-parameter )`.
pub(crate) fn check_media_type(v: &[u8]) -> Result<(), ValueError> {
    let mut c = Cursor::new(v);
    c.token().ok_or(ValueError)?;
    c.skip_lws();
    if !c.eat(b'/') {
        return Err(ValueError);
    }
    c.skip_lws();
    c.token().ok_or(ValueError)?;
    c.generic_params(None).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A name classified as known is one the splitter's token walk would have read whole,
        /// and the classification is the plain case-insensitive comparison.
        #[test]
        fn known_names_are_tokens(
            name in crate::sip::chars::mostly_from(
                b"CcAaLlIiDdOoNnTtEeSsQqVvFfRrMmXxWwPpGgYy-\r\x0d\x0e\x2d\x0c .:",
                0..20,
            ),
        ) {
            let kind = HeaderKind::from_name(&name);
            if kind != HeaderKind::Other {
                proptest::prop_assert!(name.iter().all(|&c| is_token(c)));
            }
            let plain = [
                HeaderKind::Via, HeaderKind::CallId, HeaderKind::CSeq, HeaderKind::From,
                HeaderKind::To, HeaderKind::MaxForwards, HeaderKind::ContentLength,
                HeaderKind::ContentType, HeaderKind::Contact, HeaderKind::Route,
                HeaderKind::RecordRoute, HeaderKind::Expires, HeaderKind::Date,
                HeaderKind::ContentEncoding, HeaderKind::Supported, HeaderKind::Subject,
                HeaderKind::Event, HeaderKind::AllowEvents, HeaderKind::ReferTo,
                HeaderKind::ReferredBy, HeaderKind::SessionExpires, HeaderKind::Identity,
                HeaderKind::AcceptContact, HeaderKind::RejectContact,
                HeaderKind::RequestDisposition, HeaderKind::IdentityInfo,
            ]
            .into_iter()
            .find(|k| k.canonical_name().unwrap().as_bytes().eq_ignore_ascii_case(&name))
            .or_else(|| match name.as_slice() {
                [c] => Some(HeaderKind::compact(c.to_ascii_lowercase())).filter(|k| *k != HeaderKind::Other),
                _ => None,
            })
            .unwrap_or(HeaderKind::Other);
            proptest::prop_assert_eq!(kind, plain);
        }
    }

    #[test]
    fn names() {
        assert_eq!(HeaderKind::from_name(b"call-id"), HeaderKind::CallId);
        assert_eq!(HeaderKind::from_name(b"I"), HeaderKind::CallId);
        assert_eq!(
            HeaderKind::from_name(b"MaX-fOrWaRdS"),
            HeaderKind::MaxForwards
        );
        assert_eq!(HeaderKind::from_name(b"C%6Fntact"), HeaderKind::Other);
        assert_eq!(HeaderKind::from_name(b"q"), HeaderKind::Other);
        for (c, k) in [
            (b'i', HeaderKind::CallId),
            (b'f', HeaderKind::From),
            (b't', HeaderKind::To),
            (b'v', HeaderKind::Via),
            (b'm', HeaderKind::Contact),
            (b'l', HeaderKind::ContentLength),
            (b'c', HeaderKind::ContentType),
            (b'e', HeaderKind::ContentEncoding),
            (b'k', HeaderKind::Supported),
            (b's', HeaderKind::Subject),
            (b'o', HeaderKind::Event),
            (b'u', HeaderKind::AllowEvents),
            (b'r', HeaderKind::ReferTo),
            (b'b', HeaderKind::ReferredBy),
            (b'x', HeaderKind::SessionExpires),
            (b'y', HeaderKind::Identity),
            (b'a', HeaderKind::AcceptContact),
            (b'j', HeaderKind::RejectContact),
            (b'd', HeaderKind::RequestDisposition),
            (b'n', HeaderKind::IdentityInfo),
        ] {
            assert_eq!(HeaderKind::from_name(&[c]), k);
            assert_eq!(HeaderKind::from_name(&[c.to_ascii_uppercase()]), k);
            let long = k.canonical_name().unwrap();
            assert_eq!(
                HeaderKind::from_name(long.to_ascii_uppercase().as_bytes()),
                k
            );
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.tag(), Some(&b"98asjd8"[..]));
        assert_eq!(&*n.display_name_text().unwrap(), b"J Rosenberg \\\"");
        let n =
            NameAddr::parse(b"sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.tag(), Some(&b"1918181833n"[..]));
        assert_eq!(n.display_name, None);
        let n = NameAddr::parse(b"caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name, Some(&b"caller"[..]));
        assert!(NameAddr::parse(b"\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse(b"Bell, Alexander <sip:a.g.bell@bell-tel.com>;tag=43").is_err());
        assert!(NameAddr::parse(b"\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(b"<sip:a@b>;;").is_err());
    }

    #[test]
    fn lists() {
        let v: Vec<_> = NameAddrs::new(b"<sip:a@b>;q=0.5, \"x,y\" <sip:c@d;p=1>").collect();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|r| r.is_ok()));
        let v: Vec<_> = NameAddrs::new(b"\"Joe\" <sip:joe@example.org>;;,;,,").collect();
        assert!(v.iter().any(|r| r.is_err()));
        let v: Vec<_> = Vias::new(b"SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239").collect();
        assert_eq!(v.len(), 2);
        let a = v[0].unwrap();
        assert_eq!(a.transport, b"TCP");
        assert_eq!(a.branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert_eq!(v[1].unwrap().branch(), Some(&b"z9hG4bK30239"[..]));
        assert!(Vias::new(b"SIP/2.0/UDP 192.0.2.15;;,;,,").any(|r| r.is_err()));
        let v = Via::parse(
            b"SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3-111;rport",
        )
        .unwrap();
        assert_eq!(v.received(), Some(&b"[2001:db8::9:255]"[..]));
        assert_eq!(v.rport(), Some(None));
    }

    /// CSeq as it was read before the one-walk reader: trim, digits, `parse_decimal`, LWS,
    /// token method.
    fn cseq_reference(s: &[u8]) -> Option<(u32, &[u8])> {
        let s = trim_lws(s);
        let i = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let number = parse_decimal(&s[..i], u64::from(u32::MAX))? as u32;
        let rest = &s[i..];
        let method = trim_lws(rest);
        if method.len() == rest.len() || method.is_empty() || !method.iter().all(|&c| is_token(c)) {
            return None;
        }
        Some((number, method))
    }

    proptest::proptest! {
        #[test]
        fn cseq_agrees_with_reference(
            s in "[ \t]{0,2}(0{0,3}[0-9]{0,11})([ \t]|\r\n ){0,2}[A-Za-z!.@ -]{0,8}[ \t]{0,2}"
        ) {
            let got = CSeq::parse(s.as_bytes()).ok().map(|c| (c.number, c.method));
            proptest::prop_assert_eq!(got, cseq_reference(s.as_bytes()));
        }
    }

    #[test]
    fn cseq_and_call_id() {
        assert_eq!(
            CSeq::parse(b"0009\r\n  INVITE").unwrap(),
            CSeq {
                number: 9,
                method: b"INVITE"
            }
        );
        assert!(CSeq::parse(b"36893488147419103232 INVITE").is_err());
        assert!(CSeq::parse(b"1INVITE").is_err());
        assert!(check_call_id(b"abc@1.2.3.4").is_ok());
        assert!(check_call_id(b"a b").is_err());
        assert!(check_call_id(b"a@b@c").is_err());
        assert!(check_media_type(b"application/sdp").is_ok());
        assert!(check_media_type(b"multipart/mixed;boundary=7a9cbec02ceef655").is_ok());
        assert!(check_media_type(b"text").is_err());
    }
}
