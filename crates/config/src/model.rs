//! The model: what the commands built, with every reference resolved to an index.
//!
//! [`Model::apply`] checks a command completely before changing anything, so a refused
//! command leaves the model as it was; [`load`] builds a model from a whole file and either
//! returns it or every error found, so a rejected file changes nothing.

use crate::error::{quoted, Error, LineError};
use crate::lang::{self, Command, HealthCheck, Kind, Ref, Removable, Role, State};
use crate::predictor::Predictor;
use crate::url::UrlTemplate;
use std::net::{Ipv4Addr, SocketAddr};

/// Most errors reported for one file.
pub const MAX_ERRORS: usize = 50;
pub use crate::predictor::MAX_MEMBERS;
/// Most objects of each kind.
pub const MAX_OBJECTS: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Model {
    pub virtuals: Vec<Virtual>,
    pub reals: Vec<Real>,
    pub urls: Vec<Url>,
    pub settings: Settings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtual {
    pub addr: SocketAddr,
    pub kind: VirtualKind,
    /// For a DIP this is unused: a DIP shares its real's state.
    pub state: State,
    pub backup: Option<Target>,
    /// A primary virtual answering over TLS 1.3 (`virtual <ip>:<port> tls`).
    pub tls: bool,
}

/// A primary virtual redirects; a DIP (secondary virtual) forwards to its real.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VirtualKind {
    Primary {
        members: Vec<Member>,
        predictor: Predictor,
    },
    Dip {
        real: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Real(usize),
    Url(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Real(usize),
    Virtual(usize),
    Url(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Real {
    pub addr: SocketAddr,
    pub weight: u32,
    pub state: State,
    pub backup: Option<Target>,
    /// The DIP (virtual index) paired with this real.
    pub dip: Option<usize>,
    pub health: Option<HealthCheck>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub id: String,
    pub template: UrlTemplate,
    pub code: u16,
    pub state: State,
    pub weight: u32,
    pub link: Option<Link>,
}

/// What a URL inherits its state (and, from a real, its weight) from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Real(usize),
    Virtual(usize),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    pub cookie_secret: Option<[u8; 32]>,
    /// A secret whose cookies are accepted but never issued (the next secret of a rolling
    /// change: the second line of `detour run --cookie-secret-file`). Not a config command:
    /// never written by `write memory`.
    pub cookie_accept: Option<[u8; 32]>,
    pub interfaces: Vec<Interface>,
    pub cores: Vec<usize>,
    pub metrics: Option<SocketAddr>,
    /// The client-side next hop (replies to clients go to its MAC).
    pub gateway: Option<Ipv4Addr>,
    /// Health check for reals without one of their own; `None` until `health-check all` is given.
    pub default_health: Option<HealthCheck>,
    /// `certificate` entries, in the order given (files are read by the control side).
    pub certificates: Vec<Certificate>,
    /// `tls-connections`: entries of each worker's TLS table (default
    /// [`crate::tls::DEFAULT_TLS_CONNECTIONS`]).
    pub tls_connections: Option<u32>,
    /// `tls-handshakes-per-batch`: new server flights per worker and batch (default
    /// [`crate::tls::DEFAULT_TLS_HANDSHAKES_PER_BATCH`]).
    pub tls_handshakes_per_batch: Option<u32>,
}

/// `certificate <name> <cert.pem> <key.pem>`: the files served to clients naming `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// Lower-case DNS name, `*.suffix`, or `*` (the default).
    pub name: String,
    pub cert: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub role: Role,
    pub name: String,
    pub queues: u16,
}

/// Build a model from a whole file. On failure returns every error (up to [`MAX_ERRORS`]).
pub fn load(text: &str, file: &str) -> Result<Model, Vec<Error>> {
    let mut model = Model::default();
    let mut errors = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if let Err(e) = model.apply_line(line) {
            errors.push(e.at(file, i + 1));
            if errors.len() >= MAX_ERRORS {
                break;
            }
        }
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(errors)
    }
}

pub(crate) fn unknown(r: &Ref, what: &str) -> LineError {
    LineError::new(r.col, format!("a defined {what}"), quoted(&r.text))
}

impl Model {
    /// Parse and apply one line; a comment or blank line is a no-op.
    pub fn apply_line(&mut self, line: &str) -> Result<(), LineError> {
        match lang::parse_line(line)? {
            Some(cmd) => self.apply(&cmd),
            None => Ok(()),
        }
    }

    pub fn virtual_by_addr(&self, a: SocketAddr) -> Option<usize> {
        self.virtuals.iter().position(|v| v.addr == a)
    }
    pub fn real_by_addr(&self, a: SocketAddr) -> Option<usize> {
        self.reals.iter().position(|r| r.addr == a)
    }
    pub fn url_by_id(&self, id: &str) -> Option<usize> {
        self.urls.iter().position(|u| u.id == id)
    }

    /// The canonical id of a virtual or real: `ip:port`.
    pub fn addr_id(a: SocketAddr) -> String {
        a.to_string()
    }

    pub(crate) fn addr_of(r: &Ref) -> Result<Option<SocketAddr>, LineError> {
        if lang::looks_like_addr(&r.text) {
            let t = lang::Token {
                text: &r.text,
                col: r.col,
            };
            lang::sock_addr(&t).map(Some)
        } else {
            Ok(None)
        }
    }

    /// A real by id; a DIP's address names its real (they are one pair).
    pub(crate) fn find_real(&self, r: &Ref) -> Result<usize, LineError> {
        let a = Self::addr_of(r)?.ok_or_else(|| unknown(r, "real (an address)"))?;
        if let Some(i) = self.real_by_addr(a) {
            return Ok(i);
        }
        match self.virtual_by_addr(a).map(|v| &self.virtuals[v].kind) {
            Some(VirtualKind::Dip { real }) => Ok(*real),
            _ => Err(unknown(r, "real")),
        }
    }

    pub(crate) fn find_primary(&self, r: &Ref) -> Result<usize, LineError> {
        let a = Self::addr_of(r)?.ok_or_else(|| unknown(r, "virtual (an address)"))?;
        match self.virtual_by_addr(a) {
            Some(v) if matches!(self.virtuals[v].kind, VirtualKind::Primary { .. }) => Ok(v),
            Some(_) => Err(LineError::new(
                r.col,
                "a primary virtual",
                format!("{} (a DIP)", quoted(&r.text)),
            )),
            None => Err(unknown(r, "virtual")),
        }
    }

    pub(crate) fn find_url(&self, r: &Ref) -> Result<usize, LineError> {
        self.url_by_id(&r.text).ok_or_else(|| unknown(r, "url"))
    }

    /// Resolve a real, a virtual (a DIP resolves to its real) or a url.
    pub(crate) fn find_target(&self, r: &Ref) -> Result<Target, LineError> {
        match Self::addr_of(r)? {
            None => self.find_url(r).map(Target::Url),
            Some(a) => {
                if let Some(i) = self.real_by_addr(a) {
                    return Ok(Target::Real(i));
                }
                match self.virtual_by_addr(a).map(|v| (v, &self.virtuals[v].kind)) {
                    Some((_, VirtualKind::Dip { real })) => Ok(Target::Real(*real)),
                    Some((v, VirtualKind::Primary { .. })) => Ok(Target::Virtual(v)),
                    None => Err(unknown(r, "real, virtual or url")),
                }
            }
        }
    }

    pub fn target_id(&self, t: Target) -> String {
        match t {
            Target::Real(i) => Self::addr_id(self.reals[i].addr),
            Target::Virtual(i) => Self::addr_id(self.virtuals[i].addr),
            Target::Url(i) => self.urls[i].id.clone(),
        }
    }

    /// The address of a real or virtual (a url has none).
    pub(crate) fn target_addr(&self, t: Target) -> Option<SocketAddr> {
        match t {
            Target::Real(i) => Some(self.reals[i].addr),
            Target::Virtual(i) => Some(self.virtuals[i].addr),
            Target::Url(_) => None,
        }
    }

    pub(crate) fn backup_of(&self, t: Target) -> Option<Target> {
        match t {
            Target::Real(i) => self.reals[i].backup,
            Target::Virtual(i) => self.virtuals[i].backup,
            Target::Url(_) => None,
        }
    }

    pub(crate) fn addr_in_use(
        &self,
        a: SocketAddr,
        col: usize,
        text: &str,
    ) -> Result<(), LineError> {
        if self.virtual_by_addr(a).is_some() {
            return Err(LineError::new(
                col,
                "an address not yet in use",
                format!("{} (already a virtual or DIP)", quoted(text)),
            ));
        }
        if self.real_by_addr(a).is_some() {
            return Err(LineError::new(
                col,
                "an address not yet in use",
                format!("{} (already a real)", quoted(text)),
            ));
        }
        Ok(())
    }

    /// The address a real bound directly is redirected to: its DIP's, else its own.
    pub fn redirect_addr(&self, r: usize) -> SocketAddr {
        let real = &self.reals[r];
        real.dip.map(|d| self.virtuals[d].addr).unwrap_or(real.addr)
    }

    /// A virtual's rotation stays in one family: a real bound directly is redirected to an
    /// address of the virtual's family (a client of one family cannot follow the other).
    pub(crate) fn same_family(&self, v: usize, m: Member, r: &Ref) -> Result<(), LineError> {
        let Member::Real(i) = m else { return Ok(()) };
        let (va, ra) = (self.virtuals[v].addr, self.redirect_addr(i));
        if va.is_ipv4() == ra.is_ipv4() {
            return Ok(());
        }
        Err(LineError::new(
            r.col,
            format!("a real of the virtual's family ({va})"),
            format!("{} (redirected to {ra})", quoted(&r.text)),
        ))
    }

    pub(crate) fn check_room(len: usize, col: usize, what: &str) -> Result<(), LineError> {
        if len >= MAX_OBJECTS {
            return Err(LineError::new(
                col,
                format!("at most {MAX_OBJECTS} {what}"),
                "one more",
            ));
        }
        Ok(())
    }

    /// Apply one command (through its entry in [`crate::commands::VERBS`]). Everything is
    /// checked before anything changes.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), LineError> {
        (crate::commands::verb_of(cmd).apply)(self, cmd)
    }

    /// Who refers to `t` (bindings, links, backups), for refusing its removal.
    pub(crate) fn referrers(&self, t: Target) -> Vec<String> {
        let mut out = Vec::new();
        for v in &self.virtuals {
            if let VirtualKind::Primary { members, .. } = &v.kind {
                let bound = members.iter().any(|m| match (*m, t) {
                    (Member::Real(a), Target::Real(b)) | (Member::Url(a), Target::Url(b)) => a == b,
                    _ => false,
                });
                if bound {
                    out.push(format!("bound to virtual {}", v.addr));
                }
            }
            if v.backup == Some(t) {
                out.push(format!("the backup of virtual {}", v.addr));
            }
        }
        for r in &self.reals {
            if r.backup == Some(t) {
                out.push(format!("the backup of real {}", r.addr));
            }
        }
        for u in &self.urls {
            let linked = matches!((u.link, t), (Some(Link::Real(a)), Target::Real(b)) | (Some(Link::Virtual(a)), Target::Virtual(b)) if a == b);
            if linked {
                out.push(format!("linked from url {}", u.id));
            }
        }
        out
    }

    /// `no url|real|dip|virtual <id>`: remove an object nothing refers to, renumbering the
    /// references to the objects after it.
    pub(crate) fn remove(&mut self, kind: Removable, id: &Ref) -> Result<(), LineError> {
        let in_use = |what: &str, refs: Vec<String>| {
            LineError::new(
                id.col,
                format!("{what} nothing refers to (remove those references first)"),
                format!("{} is {}", quoted(&id.text), refs.join(", ")),
            )
        };
        match kind {
            Removable::Url => {
                let u = self.find_url(id)?;
                let refs = self.referrers(Target::Url(u));
                if !refs.is_empty() {
                    return Err(in_use("a url", refs));
                }
                self.urls.remove(u);
                self.renumber(|t| match t {
                    Target::Url(i) if i > u => Target::Url(i - 1),
                    t => t,
                });
            }
            Removable::Real => {
                let a = Self::addr_of(id)?.ok_or_else(|| unknown(id, "real (an address)"))?;
                let r = self.real_by_addr(a).ok_or_else(|| unknown(id, "real"))?;
                let mut refs = self.referrers(Target::Real(r));
                if let Some(d) = self.reals[r].dip {
                    refs.push(format!(
                        "paired with DIP {} (`no dip` it)",
                        self.virtuals[d].addr
                    ));
                }
                if !refs.is_empty() {
                    return Err(in_use("a real", refs));
                }
                self.reals.remove(r);
                self.renumber(|t| match t {
                    Target::Real(i) if i > r => Target::Real(i - 1),
                    t => t,
                });
            }
            Removable::Dip | Removable::Virtual => {
                let a = Self::addr_of(id)?.ok_or_else(|| unknown(id, "virtual (an address)"))?;
                let v = self
                    .virtual_by_addr(a)
                    .ok_or_else(|| unknown(id, "virtual or DIP"))?;
                match (&self.virtuals[v].kind, kind) {
                    (VirtualKind::Dip { real }, Removable::Dip) => {
                        // The real stays (`no real` removes it); it just has no DIP any more.
                        let real = *real;
                        self.reals[real].dip = None;
                    }
                    (VirtualKind::Primary { .. }, Removable::Virtual) => {
                        let refs = self.referrers(Target::Virtual(v));
                        if !refs.is_empty() {
                            return Err(in_use("a virtual", refs));
                        }
                    }
                    (VirtualKind::Dip { .. }, _) => {
                        return Err(LineError::new(
                            id.col,
                            "a primary virtual (use `no dip` for a DIP)",
                            quoted(&id.text),
                        ))
                    }
                    (VirtualKind::Primary { .. }, _) => {
                        return Err(LineError::new(
                            id.col,
                            "a DIP (use `no virtual` for a primary virtual)",
                            quoted(&id.text),
                        ))
                    }
                }
                self.virtuals.remove(v);
                self.renumber(|t| match t {
                    Target::Virtual(i) if i > v => Target::Virtual(i - 1),
                    t => t,
                });
            }
        }
        Ok(())
    }

    /// Apply `f` to every reference by index (members, links, backups, DIP pairs).
    pub(crate) fn renumber(&mut self, f: impl Fn(Target) -> Target) {
        let real = |i: usize| match f(Target::Real(i)) {
            Target::Real(j) => j,
            _ => unreachable!("renumbering keeps kinds"),
        };
        let virt = |i: usize| match f(Target::Virtual(i)) {
            Target::Virtual(j) => j,
            _ => unreachable!("renumbering keeps kinds"),
        };
        let url = |i: usize| match f(Target::Url(i)) {
            Target::Url(j) => j,
            _ => unreachable!("renumbering keeps kinds"),
        };
        for v in &mut self.virtuals {
            v.backup = v.backup.map(&f);
            match &mut v.kind {
                VirtualKind::Primary { members, .. } => {
                    for m in members.iter_mut() {
                        *m = match *m {
                            Member::Real(i) => Member::Real(real(i)),
                            Member::Url(i) => Member::Url(url(i)),
                        };
                    }
                }
                VirtualKind::Dip { real: r } => *r = real(*r),
            }
        }
        for r in &mut self.reals {
            r.backup = r.backup.map(&f);
            r.dip = r.dip.map(virt);
        }
        for u in &mut self.urls {
            u.link = u.link.map(|l| match l {
                Link::Real(i) => Link::Real(real(i)),
                Link::Virtual(i) => Link::Virtual(virt(i)),
            });
        }
    }

    pub(crate) fn set_backup(&mut self, src: Target, b: Option<Target>) {
        match src {
            Target::Real(i) => self.reals[i].backup = b,
            Target::Virtual(i) => self.virtuals[i].backup = b,
            Target::Url(_) => unreachable!("checked by the caller"),
        }
    }

    pub(crate) fn set_state(
        &mut self,
        kind: Kind,
        id: &Ref,
        state: State,
        all: bool,
    ) -> Result<(), LineError> {
        match kind {
            Kind::Virtual => {
                let a = Self::addr_of(id)?.ok_or_else(|| unknown(id, "virtual (an address)"))?;
                let v = self
                    .virtual_by_addr(a)
                    .ok_or_else(|| unknown(id, "virtual"))?;
                match self.virtuals[v].kind.clone() {
                    // A DIP and its real share one state.
                    VirtualKind::Dip { real } => self.reals[real].state = state,
                    VirtualKind::Primary { members, .. } => {
                        self.virtuals[v].state = state;
                        if all {
                            for m in members {
                                match m {
                                    Member::Real(r) => self.reals[r].state = state,
                                    Member::Url(u) => self.urls[u].state = state,
                                }
                            }
                        }
                    }
                }
            }
            Kind::Real => {
                let r = self.find_real(id)?;
                self.reals[r].state = state;
                if all {
                    // `all`: the URLs linked to this real too.
                    for u in &mut self.urls {
                        if u.link == Some(Link::Real(r)) {
                            u.state = state;
                        }
                    }
                }
            }
            Kind::Url => {
                let u = self.find_url(id)?;
                self.urls[u].state = state;
            }
        }
        Ok(())
    }

    /// Effective state of a URL: its own, made worse by what it is linked to.
    pub fn url_state(&self, u: usize) -> State {
        let url = &self.urls[u];
        match url.link {
            None => url.state,
            Some(Link::Real(r)) => url.state.worst(self.reals[r].state),
            Some(Link::Virtual(v)) => url.state.worst(self.virtuals[v].state),
        }
    }

    /// Effective weight of a URL: a URL linked to a real takes the real's weight.
    pub fn url_weight(&self, u: usize) -> u32 {
        match self.urls[u].link {
            Some(Link::Real(r)) => self.reals[r].weight,
            _ => self.urls[u].weight,
        }
    }

    /// The running configuration as commands that rebuild this exact model: each verb's
    /// part, in the table's order.
    pub fn to_config(&self) -> String {
        let mut s = String::new();
        for v in crate::commands::VERBS {
            if let Some(w) = v.write {
                w(self, &mut s);
            }
        }
        s
    }
}

pub(crate) fn new_real(addr: SocketAddr) -> Real {
    Real {
        addr,
        weight: 1,
        state: State::InService,
        backup: None,
        dip: None,
        health: None,
    }
}
