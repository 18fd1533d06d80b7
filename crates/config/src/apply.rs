//! How each verb changes the model (the `apply` of its entry in [`crate::commands`]). Each
//! checks everything before it changes anything, so a refused command leaves the model as
//! it was.

use crate::error::{quoted, LineError};
use crate::lang::{Command, State};
use crate::model::{
    new_real, Interface, Link, Member, Model, Target, Url, Virtual, VirtualKind, MAX_MEMBERS,
};
use crate::predictor::Predictor;

/// The command an entry's `apply` is given is always that entry's.
const WRONG: &str = "the table hands each apply its own command";

impl Model {
    /// `virtual`, `real`, `url`: a new object.
    pub(crate) fn apply_object(&mut self, cmd: &Command) -> Result<(), LineError> {
        match cmd {
            Command::Virtual { addr, col, tls } => {
                self.addr_in_use(*addr, *col, &addr.to_string())?;
                Self::check_room(self.virtuals.len(), *col, "virtuals")?;
                self.virtuals.push(Virtual {
                    addr: *addr,
                    kind: VirtualKind::Primary {
                        members: Vec::new(),
                        predictor: Predictor::Weighted,
                    },
                    state: State::InService,
                    backup: None,
                    tls: *tls,
                });
            }
            Command::Real { addr, col } => {
                self.addr_in_use(*addr, *col, &addr.to_string())?;
                Self::check_room(self.reals.len(), *col, "reals")?;
                self.reals.push(new_real(*addr));
            }
            Command::Url { id, template, code } => {
                if self.url_by_id(&id.text).is_some() {
                    return Err(LineError::new(
                        id.col,
                        "a new url id",
                        format!("{} (already defined)", quoted(&id.text)),
                    ));
                }
                Self::check_room(self.urls.len(), id.col, "urls")?;
                self.urls.push(Url {
                    id: id.text.clone(),
                    template: template.clone(),
                    code: *code,
                    state: State::InService,
                    weight: 1,
                    link: None,
                });
            }
            _ => unreachable!("{WRONG}"),
        }
        Ok(())
    }

    pub(crate) fn apply_dip(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Dip { addr, real, col } = cmd else {
            unreachable!("{WRONG}")
        };
        let col = *col;
        let real_addr = real.unwrap_or(*addr);
        if real_addr.is_ipv4() != addr.is_ipv4() {
            return Err(LineError::new(
                col,
                "a DIP and its real in one address family",
                format!(
                    "DIP {} with real {}",
                    quoted(&addr.to_string()),
                    quoted(&real_addr.to_string())
                ),
            ));
        }
        if self.virtual_by_addr(*addr).is_some() {
            return Err(LineError::new(
                col,
                "an address not yet in use",
                format!("{} (already a virtual or DIP)", quoted(&addr.to_string())),
            ));
        }
        if real.is_some() && self.real_by_addr(*addr).is_some() {
            return Err(LineError::new(
                col,
                "an address not yet in use",
                format!("{} (already a real)", quoted(&addr.to_string())),
            ));
        }
        if real.is_some() && self.virtual_by_addr(real_addr).is_some() {
            return Err(LineError::new(
                col,
                "a real address that is not a virtual or DIP",
                quoted(&real_addr.to_string()),
            ));
        }
        let existing = self.real_by_addr(real_addr);
        if let Some(r) = existing {
            if let Some(d) = self.reals[r].dip {
                return Err(LineError::new(
                    col,
                    "a real without a DIP (a DIP pairs 1-to-1 with its real)",
                    format!(
                        "real {} already paired with DIP {}",
                        quoted(&real_addr.to_string()),
                        quoted(&self.virtuals[d].addr.to_string())
                    ),
                ));
            }
        }
        Self::check_room(
            self.virtuals.len().max(self.reals.len()),
            col,
            "virtuals and reals",
        )?;
        let r = match existing {
            Some(r) => r,
            None => {
                self.reals.push(new_real(real_addr));
                self.reals.len() - 1
            }
        };
        self.virtuals.push(Virtual {
            addr: *addr,
            kind: VirtualKind::Dip { real: r },
            state: State::InService,
            backup: None,
            tls: false,
        });
        self.reals[r].dip = Some(self.virtuals.len() - 1);
        Ok(())
    }

    pub(crate) fn apply_bind(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Bind { no, virt, members } = cmd else {
            unreachable!("{WRONG}")
        };
        let v = self.find_primary(virt)?;
        let mut resolved = Vec::with_capacity(members.len());
        for m in members {
            let member = match self.find_target(m)? {
                Target::Real(i) => Member::Real(i),
                Target::Url(i) => Member::Url(i),
                Target::Virtual(_) => {
                    return Err(LineError::new(
                        m.col,
                        "a real or url id (a primary virtual cannot be bound)",
                        quoted(&m.text),
                    ))
                }
            };
            self.same_family(v, member, m)?;
            if resolved.iter().any(|(x, _)| *x == member) {
                return Err(LineError::new(
                    m.col,
                    "each member once",
                    format!("{} again", quoted(&m.text)),
                ));
            }
            resolved.push((member, m));
        }
        let VirtualKind::Primary { members: cur, .. } = &mut self.virtuals[v].kind else {
            unreachable!("find_primary returns primaries")
        };
        if *no {
            for (m, r) in &resolved {
                if !cur.contains(m) {
                    return Err(LineError::new(
                        r.col,
                        format!("a member bound to {}", quoted(&virt.text)),
                        quoted(&r.text),
                    ));
                }
            }
            cur.retain(|m| !resolved.iter().any(|(x, _)| x == m));
        } else {
            for (m, r) in &resolved {
                if cur.contains(m) {
                    return Err(LineError::new(
                        r.col,
                        format!("a member not yet bound to {}", quoted(&virt.text)),
                        quoted(&r.text),
                    ));
                }
            }
            if cur.len() + resolved.len() > MAX_MEMBERS {
                return Err(LineError::new(
                    virt.col,
                    format!("at most {MAX_MEMBERS} members per virtual"),
                    format!("{}", cur.len() + resolved.len()),
                ));
            }
            cur.extend(resolved.iter().map(|(m, _)| *m));
        }
        Ok(())
    }

    pub(crate) fn apply_link(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Link { url, target } = cmd else {
            unreachable!("{WRONG}")
        };
        let u = self.find_url(url)?;
        let link = match self.find_target(target)? {
            Target::Real(r) => Link::Real(r),
            Target::Virtual(v) => Link::Virtual(v),
            Target::Url(_) => {
                return Err(LineError::new(
                    target.col,
                    "a virtual, DIP or real to link to",
                    format!("{} (a url)", quoted(&target.text)),
                ))
            }
        };
        self.urls[u].link = Some(link);
        Ok(())
    }

    pub(crate) fn apply_backup(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Backup { no, of, backup } = cmd else {
            unreachable!("{WRONG}")
        };
        let src = match self.find_target(of)? {
            Target::Url(_) => {
                return Err(LineError::new(
                    of.col,
                    "a real or virtual id (a url has no backup)",
                    quoted(&of.text),
                ))
            }
            t => t,
        };
        if *no {
            if let Some(b) = backup {
                let bt = self.find_target(b)?;
                if self.backup_of(src) != Some(bt) {
                    return Err(LineError::new(
                        b.col,
                        format!("the current backup of {}", quoted(&of.text)),
                        quoted(&b.text),
                    ));
                }
            }
            self.set_backup(src, None);
        } else {
            let b = backup.as_ref().expect("parser gives a backup id");
            let bt = self.find_target(b)?;
            if let (Some(x), Some(y)) = (self.target_addr(src), self.target_addr(bt)) {
                if x.is_ipv4() != y.is_ipv4() {
                    return Err(LineError::new(
                        b.col,
                        format!("a backup of the same address family as {x}"),
                        quoted(&b.text),
                    ));
                }
            }
            // Walk the chain from the new backup; reaching the source again is a cycle.
            let mut chain = vec![self.target_id(src), self.target_id(bt)];
            let mut cur = Some(bt);
            let mut steps = 0;
            while let Some(t) = cur {
                if t == src {
                    return Err(LineError::new(
                        b.col,
                        "a backup chain without a cycle",
                        chain.join(" -> "),
                    ));
                }
                cur = self.backup_of(t);
                if let Some(n) = cur {
                    chain.push(self.target_id(n));
                }
                steps += 1;
                if steps > self.reals.len() + self.virtuals.len() + 1 {
                    break; // the model is acyclic, so this is unreachable
                }
            }
            self.set_backup(src, Some(bt));
        }
        Ok(())
    }

    pub(crate) fn apply_weight(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Weight { id, weight } = cmd else {
            unreachable!("{WRONG}")
        };
        match self.find_target(id)? {
            Target::Real(r) => self.reals[r].weight = *weight,
            Target::Url(u) => {
                if let Some(Link::Real(r)) = self.urls[u].link {
                    return Err(LineError::new(
                        id.col,
                        "an unlinked url (a linked url takes its real's weight)",
                        format!(
                            "{} linked to {}",
                            quoted(&id.text),
                            quoted(&Self::addr_id(self.reals[r].addr))
                        ),
                    ));
                }
                self.urls[u].weight = *weight;
            }
            Target::Virtual(_) => {
                return Err(LineError::new(
                    id.col,
                    "a real or url id (virtuals have no weight)",
                    quoted(&id.text),
                ))
            }
        }
        Ok(())
    }

    pub(crate) fn apply_predictor(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Predictor { virt, predictor } = cmd else {
            unreachable!("{WRONG}")
        };
        let v = self.find_primary(virt)?;
        if let VirtualKind::Primary { predictor: p, .. } = &mut self.virtuals[v].kind {
            *p = *predictor;
        }
        Ok(())
    }

    pub(crate) fn apply_health(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::HealthCheck { target, check } = cmd else {
            unreachable!("{WRONG}")
        };
        if target.text.eq_ignore_ascii_case("all") {
            self.settings.default_health = Some(check.clone());
        } else {
            let r = self.find_real(target)?;
            self.reals[r].health = Some(check.clone());
        }
        Ok(())
    }

    /// `in-service`, `out-of-service`.
    pub(crate) fn apply_state(&mut self, cmd: &Command) -> Result<(), LineError> {
        match cmd {
            Command::InService { kind, id, all } => {
                self.set_state(*kind, id, State::InService, *all)
            }
            Command::OutOfService {
                kind,
                id,
                state,
                all,
            } => self.set_state(*kind, id, *state, *all),
            _ => unreachable!("{WRONG}"),
        }
    }

    pub(crate) fn apply_remove(&mut self, cmd: &Command) -> Result<(), LineError> {
        let Command::Remove { kind, id } = cmd else {
            unreachable!("{WRONG}")
        };
        self.remove(*kind, id)
    }

    /// `cookie-secret`, `interface`, `cores`, `metrics`, `gateway`: settings.
    pub(crate) fn apply_setting(&mut self, cmd: &Command) -> Result<(), LineError> {
        let st = &mut self.settings;
        match cmd {
            Command::CookieSecret { secret } => st.cookie_secret = Some(*secret),
            Command::Interface { role, name, queues } => {
                if let Some(i) = st.interfaces.iter_mut().find(|i| i.role == *role) {
                    i.name = name.clone();
                    i.queues = *queues;
                } else {
                    st.interfaces.push(Interface {
                        role: *role,
                        name: name.clone(),
                        queues: *queues,
                    });
                }
            }
            Command::Cores { cores } => st.cores = cores.clone(),
            Command::Metrics { addr } => st.metrics = Some(*addr),
            Command::Gateway { addr } => st.gateway = Some(*addr),
            _ => unreachable!("{WRONG}"),
        }
        Ok(())
    }
}
