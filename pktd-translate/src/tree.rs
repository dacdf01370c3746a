//! Decision trees: many filters merged so that what they have in common runs
//! once.
//!
//! A classic-BPF program is a DAG of instructions; expanded into a tree,
//! every node is reached by exactly one path from the start, so everything
//! about the machine state there (A, X, M[]) is determined by that path. Two
//! filters whose paths run the same instructions are in the same state, and
//! can share those nodes until they first differ. Where they differ, a
//! [`Node::Fork`] runs each alternative from the same saved state.
//!
//! A return becomes [`Node::Accept`] for the filter's slot (returns of 0 are
//! simply the end of the path). Programs using scratch memory are not
//! merged: a fork restores A and X, not M[].

use pktd_common::CbpfInsn;
use pktd_filter::opcodes::*;

use crate::Filter;

/// Most nodes one filter may expand into before it is translated on its
/// own instead (libpcap's DAGs can expand exponentially).
pub const MAX_TREE_NODES: usize = 1024;

/// Most nodes in one merged tree; past it a new tree is started.
pub const MAX_MERGED_NODES: usize = 4096;

/// Deepest nesting of forks in a tree: each level keeps A and X on the
/// stack.
pub const MAX_FORK_DEPTH: usize = 40;

/// What a filter returns when it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    /// `ret #k` (k > 0).
    Constant(u32),
    /// `ret a`.
    A,
}

/// A node of a decision tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Nothing more to do on this path.
    End,
    /// A load, store, ALU operation or register move; faults (a load
    /// outside the packet, a division by zero) end the path.
    Exec(CbpfInsn, Box<Node>),
    /// A conditional jump: (test, taken, not taken).
    Branch(CbpfInsn, Box<Node>, Box<Node>),
    /// Slot `0` accepts the packet with this length, then the path goes on
    /// for the other filters sharing it.
    Accept(u32, Len, Box<Node>),
    /// Alternatives, each run from the state at the fork.
    Fork(Vec<Node>),
}

impl Node {
    /// The conditional jump `jeq #k` with nothing on its false branch: the
    /// shape a binary search can serve.
    pub fn as_equality_case(&self) -> Option<(u32, &Node)> {
        match self {
            Node::Branch(test, taken, not_taken)
                if test.code == BPF_JMP | BPF_JEQ | BPF_K && **not_taken == Node::End =>
            {
                Some((test.k, taken))
            }
            _ => None,
        }
    }

    fn fork_depth(&self) -> usize {
        match self {
            Node::End => 0,
            Node::Exec(_, next) | Node::Accept(_, _, next) => next.fork_depth(),
            Node::Branch(_, taken, not_taken) => taken.fork_depth().max(not_taken.fork_depth()),
            Node::Fork(alternatives) => {
                1 + alternatives.iter().map(Node::fork_depth).max().unwrap_or(0)
            }
        }
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        match self {
            Node::End => 1,
            Node::Exec(_, next) | Node::Accept(_, _, next) => 1 + next.size(),
            Node::Branch(_, taken, not_taken) => 1 + taken.size() + not_taken.size(),
            Node::Fork(alternatives) => 1 + alternatives.iter().map(Node::size).sum::<usize>(),
        }
    }
}

/// The trees a set of filters was merged into.
#[derive(Clone, Debug, Default)]
pub struct Forest {
    trees: Vec<Node>,
}

impl Forest {
    /// Merges `filters` into as few trees as the limits allow; returns the
    /// forest and the filters that must be translated on their own.
    pub fn plant<'a>(filters: &[Filter<'a>]) -> (Self, Vec<Filter<'a>>) {
        let mut forest = Self::default();
        let mut alone = Vec::new();
        for filter in filters {
            let insns = filter.program.insns();
            let tree = if uses_scratch_memory(insns) {
                None
            } else {
                expand(insns, filter.slot)
            };
            match tree {
                Some(tree) => forest.add(tree),
                None => alone.push(*filter),
            }
        }
        (forest, alone)
    }

    /// The trees.
    pub fn trees(&self) -> &[Node] {
        &self.trees
    }

    fn add(&mut self, tree: Node) {
        for existing in &mut self.trees {
            let merged = merge(existing.clone(), tree.clone());
            if merged.fork_depth() <= MAX_FORK_DEPTH && merged.size() <= MAX_MERGED_NODES {
                *existing = merged;
                return;
            }
        }
        self.trees.push(tree);
    }
}

fn uses_scratch_memory(insns: &[CbpfInsn]) -> bool {
    insns.iter().any(|insn| {
        matches!(insn.code, 0x02 | 0x03)
            || insn.code == BPF_LD | BPF_MEM
            || insn.code == BPF_LDX | BPF_MEM
    })
}

/// The tree of a validated program for `slot`; `None` past MAX_TREE_NODES.
pub fn expand(insns: &[CbpfInsn], slot: u32) -> Option<Node> {
    let mut budget = MAX_TREE_NODES;
    expand_at(insns, 0, slot, &mut budget)
}

fn expand_at(insns: &[CbpfInsn], pc: usize, slot: u32, budget: &mut usize) -> Option<Node> {
    *budget = budget.checked_sub(1)?;
    let insn = *insns.get(pc)?;
    let node = match insn.code & 0x07 {
        BPF_RET if insn.code & 0x18 == BPF_A => Node::Accept(slot, Len::A, Box::new(Node::End)),
        BPF_RET if insn.k == 0 => Node::End,
        BPF_RET => Node::Accept(slot, Len::Constant(insn.k), Box::new(Node::End)),
        BPF_JMP if insn.code == BPF_JMP | BPF_JA => {
            return expand_at(insns, pc + 1 + insn.k as usize, slot, budget);
        }
        BPF_JMP => {
            let taken = expand_at(insns, pc + 1 + usize::from(insn.jt), slot, budget)?;
            let not_taken = expand_at(insns, pc + 1 + usize::from(insn.jf), slot, budget)?;
            if taken == Node::End && not_taken == Node::End {
                Node::End
            } else {
                Node::Branch(insn, Box::new(taken), Box::new(not_taken))
            }
        }
        _ => Node::Exec(insn, Box::new(expand_at(insns, pc + 1, slot, budget)?)),
    };
    Some(node)
}

/// Same effect on the same state: opcode and constant (jump offsets mean
/// nothing in a tree).
fn same(a: &CbpfInsn, b: &CbpfInsn) -> bool {
    a.code == b.code && a.k == b.k
}

/// A tree doing what `a` and `b` do, from the same state.
pub fn merge(a: Node, b: Node) -> Node {
    match (a, b) {
        (Node::End, other) | (other, Node::End) => other,
        (Node::Accept(slot, len, next), other) | (other, Node::Accept(slot, len, next)) => {
            Node::Accept(slot, len, Box::new(merge(*next, other)))
        }
        (Node::Exec(a, next_a), Node::Exec(b, next_b)) if same(&a, &b) => {
            Node::Exec(a, Box::new(merge(*next_a, *next_b)))
        }
        (Node::Branch(a, taken_a, not_a), Node::Branch(b, taken_b, not_b)) if same(&a, &b) => {
            Node::Branch(
                a,
                Box::new(merge(*taken_a, *taken_b)),
                Box::new(merge(*not_a, *not_b)),
            )
        }
        (Node::Fork(mut alternatives), other) | (other, Node::Fork(mut alternatives)) => {
            match other {
                Node::Fork(more) => {
                    for alternative in more {
                        add_alternative(&mut alternatives, alternative);
                    }
                }
                other => add_alternative(&mut alternatives, other),
            }
            Node::Fork(alternatives)
        }
        (a, b) => Node::Fork(vec![a, b]),
    }
}

fn add_alternative(alternatives: &mut Vec<Node>, node: Node) {
    let compatible = alternatives
        .iter()
        .position(|existing| match (existing, &node) {
            (Node::Exec(a, _), Node::Exec(b, _))
            | (Node::Branch(a, _, _), Node::Branch(b, _, _)) => same(a, b),
            _ => false,
        });
    match compatible {
        Some(index) => {
            let existing = std::mem::replace(&mut alternatives[index], Node::End);
            alternatives[index] = merge(existing, node);
        }
        None => alternatives.push(node),
    }
}
