//! A linear intermediate form between classic BPF and eBPF: classic-BPF
//! instructions plus the few operations decision trees need, with symbolic
//! labels. Every jump goes forward.

use pktd_common::CbpfInsn;
use pktd_filter::opcodes::*;

use crate::tree::{Len, Node};

/// A position in the program, bound by [`Op::Bind`].
pub type Label = usize;

#[derive(Clone, Debug)]
pub enum Op {
    /// Here is `Label`.
    Bind(Label),
    /// A classic-BPF load, store, ALU operation or register move.
    Exec(CbpfInsn),
    /// A classic-BPF conditional jump.
    Branch {
        test: CbpfInsn,
        taken: Label,
        not_taken: Label,
    },
    Goto(Label),
    /// The slot's filter accepts with this length (`Len::A`: if A is not 0).
    Accept {
        slot: u32,
        len: Len,
    },
    /// A = X = 0: the start of a classic-BPF program.
    Reset,
    /// Keeps A and X in save area `depth`.
    Save(usize),
    /// Takes A and X back from save area `depth`.
    Restore(usize),
}

/// One operation and where a fault in it (a load outside the packet, a
/// division by zero) continues: the end of the filter, or of the fork
/// alternative it is in.
#[derive(Clone, Debug)]
pub struct Step {
    pub op: Op,
    pub fault: Label,
}

#[derive(Clone, Debug, Default)]
pub struct Ir {
    pub steps: Vec<Step>,
    pub labels: usize,
}

impl Ir {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }

    fn push(&mut self, op: Op, fault: Label) {
        self.steps.push(Step { op, fault });
    }

    fn bind(&mut self, label: Label) {
        self.push(Op::Bind(label), label);
    }

    /// One filter translated on its own, instruction for instruction.
    pub fn lower_program(&mut self, slot: u32, insns: &[CbpfInsn]) {
        let done = self.label();
        let at: Vec<Label> = insns.iter().map(|_| self.label()).collect();
        self.push(Op::Reset, done);
        for (pc, insn) in insns.iter().enumerate() {
            self.bind(at[pc]);
            let target = |offset: usize| at[pc + 1 + offset];
            match insn.code & 0x07 {
                BPF_RET => {
                    let len = if insn.code & 0x18 == BPF_A {
                        Some(Len::A)
                    } else {
                        (insn.k != 0).then_some(Len::Constant(insn.k))
                    };
                    if let Some(len) = len {
                        self.push(Op::Accept { slot, len }, done);
                    }
                    self.push(Op::Goto(done), done);
                }
                BPF_JMP if insn.code == BPF_JMP | BPF_JA => {
                    self.push(Op::Goto(target(insn.k as usize)), done);
                }
                BPF_JMP => self.push(
                    Op::Branch {
                        test: *insn,
                        taken: target(usize::from(insn.jt)),
                        not_taken: target(usize::from(insn.jf)),
                    },
                    done,
                ),
                _ => self.push(Op::Exec(*insn), done),
            }
        }
        self.bind(done);
    }

    /// A decision tree, from a fresh state.
    pub fn lower_tree(&mut self, root: &Node) {
        let done = self.label();
        self.push(Op::Reset, done);
        self.lower_node(root, 0, done);
        self.bind(done);
    }

    fn lower_node(&mut self, node: &Node, depth: usize, done: Label) {
        match node {
            Node::End => self.push(Op::Goto(done), done),
            Node::Exec(insn, next) => {
                self.push(Op::Exec(*insn), done);
                self.lower_node(next, depth, done);
            }
            Node::Accept(slot, len, next) => {
                self.push(
                    Op::Accept {
                        slot: *slot,
                        len: *len,
                    },
                    done,
                );
                self.lower_node(next, depth, done);
            }
            Node::Branch(test, taken, not_taken) => {
                let (taken_at, not_taken_at) = (self.label(), self.label());
                self.push(
                    Op::Branch {
                        test: *test,
                        taken: taken_at,
                        not_taken: not_taken_at,
                    },
                    done,
                );
                self.bind(taken_at);
                self.lower_node(taken, depth, done);
                self.bind(not_taken_at);
                self.lower_node(not_taken, depth, done);
            }
            Node::Fork(alternatives) => self.lower_fork(alternatives, depth, done),
        }
    }

    /// Each alternative from the same state. Alternatives of the form
    /// `jeq #k` → subtree (nothing when false) are one binary search
    /// over k: at most one of them can be taken.
    fn lower_fork(&mut self, alternatives: &[Node], depth: usize, done: Label) {
        let mut cases: Vec<(u32, &Node)> = alternatives
            .iter()
            .filter_map(Node::as_equality_case)
            .collect();
        let mut groups: Vec<Group<'_>> = Vec::new();
        if cases.len() >= 2 {
            cases.sort_by_key(|(k, _)| *k);
            groups.push(Group::Search(cases));
            groups.extend(
                alternatives
                    .iter()
                    .filter(|node| node.as_equality_case().is_none())
                    .map(Group::Single),
            );
        } else {
            groups.extend(alternatives.iter().map(Group::Single));
        }
        if let [group] = groups.as_slice() {
            return self.lower_group(group, depth, done);
        }
        self.push(Op::Save(depth), done);
        let last = groups.len() - 1;
        for (index, group) in groups.iter().enumerate() {
            let next = if index == last { done } else { self.label() };
            if index > 0 {
                self.push(Op::Restore(depth), next);
            }
            self.lower_group(group, depth + 1, next);
            if index != last {
                self.bind(next);
            }
        }
    }

    fn lower_group(&mut self, group: &Group<'_>, depth: usize, done: Label) {
        match group {
            Group::Single(node) => self.lower_node(node, depth, done),
            Group::Search(cases) => self.lower_search(cases, depth, done),
        }
    }

    /// Binary search over sorted, distinct constants compared with A.
    fn lower_search(&mut self, cases: &[(u32, &Node)], depth: usize, done: Label) {
        const LINEAR: usize = 3;
        if cases.len() <= LINEAR {
            let bodies: Vec<Label> = cases.iter().map(|_| self.label()).collect();
            for ((k, _), body) in cases.iter().zip(&bodies) {
                let next = self.label();
                self.push(
                    Op::Branch {
                        test: CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, *k),
                        taken: *body,
                        not_taken: next,
                    },
                    done,
                );
                self.bind(next);
            }
            self.push(Op::Goto(done), done);
            for ((_, node), body) in cases.iter().zip(bodies) {
                self.bind(body);
                self.lower_node(node, depth, done);
            }
            return;
        }
        let middle = cases.len() / 2;
        let (low, high) = (self.label(), self.label());
        self.push(
            Op::Branch {
                test: CbpfInsn::new(BPF_JMP | BPF_JGT | BPF_K, 0, 0, cases[middle - 1].0),
                taken: high,
                not_taken: low,
            },
            done,
        );
        self.bind(low);
        self.lower_search(&cases[..middle], depth, done);
        self.bind(high);
        self.lower_search(&cases[middle..], depth, done);
    }
}

enum Group<'a> {
    Single(&'a Node),
    Search(Vec<(u32, &'a Node)>),
}
