//! Differential test of the filter engines: libpcap's own
//! pcap_offline_filter (the reference), pktd's userspace interpreter, and the
//! kernel program run through BPF_PROG_TEST_RUN with each kernel engine (the
//! in-kernel interpreter, native per-client programs, the shared native
//! decision program) — same verdicts, same capture lengths, same bytes, for
//! every corpus filter (optimised and not) on every corpus packet.

use pktd_common::{MAX_CAPLEN, MAX_CLIENTS};
use pktd_daemon::capture::{ClientSpec, Engine, Hook, MAX_CHAIN, SlotEngine};
use pktd_filter::{ValidProgram, compile, interpret, pcap_offline_filter};
use pktd_tests::{corpus, kernel::Bench};

const PACKETS: usize = 500;
const SNAPLEN: u32 = 262_144;

struct Case {
    label: String,
    program: ValidProgram,
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for expression in corpus::filters() {
        for optimize in [true, false] {
            let program = compile(expression, optimize, SNAPLEN)
                .unwrap_or_else(|err| panic!("compiling {expression:?}: {err}"));
            cases.push(Case {
                label: format!("{expression:?} (optimize={optimize})"),
                program,
            });
        }
    }
    cases
}

#[test]
fn libpcap_and_the_kernel_interpreter_agree() {
    libpcap_interpreter_and_kernel_agree(Engine::Interpreter, MAX_CLIENTS as usize, Hook::Tc);
}

/// The XDP programs, interpreting and native: same semantics as at TC.
#[test]
fn libpcap_and_the_xdp_hook_agree() {
    libpcap_interpreter_and_kernel_agree(Engine::Interpreter, MAX_CLIENTS as usize, Hook::Xdp);
    libpcap_interpreter_and_kernel_agree(Engine::Shared, MAX_CLIENTS as usize, Hook::Xdp);
}

#[test]
fn libpcap_and_native_per_client_programs_agree() {
    libpcap_interpreter_and_kernel_agree(Engine::PerClient, MAX_CHAIN, Hook::Tc);
}

/// Batches of 64 filters merged into one program: the sharing itself is
/// under test.
#[test]
fn libpcap_and_the_shared_native_program_agree() {
    libpcap_interpreter_and_kernel_agree(Engine::Shared, MAX_CLIENTS as usize, Hook::Tc);
}

fn libpcap_interpreter_and_kernel_agree(engine: Engine, batch_size: usize, hook: Hook) {
    let packets = corpus::packets(PACKETS, 1);
    let cases = cases();
    assert!(cases.len() >= 120, "only {} filter programs", cases.len());

    let mut disagreements = Vec::new();
    let mut refused = std::collections::BTreeSet::new();
    let mut matches = 0usize;
    let mut checked = 0usize;
    for batch in cases.chunks(batch_size) {
        let programs: Vec<ValidProgram> = batch.iter().map(|case| case.program.clone()).collect();
        let spec = ClientSpec {
            directions: pktd_common::DIR_IN,
            ..ClientSpec::default()
        };
        let mut bench = Bench::with_hook(&programs, &spec, engine, hook);
        // Every corpus filter gets the engine asked for: no silent fallback.
        let wanted = match engine {
            Engine::Interpreter => SlotEngine::Interpreted,
            Engine::PerClient | Engine::Shared => SlotEngine::Native,
        };
        for (case, client) in batch.iter().zip(&bench.clients) {
            let now = bench.attachment.slot_engine(client.slot()).unwrap();
            assert_eq!(now, wanted, "{engine} {hook:?}: {}", case.label);
        }
        for (index, packet) in packets.iter().enumerate() {
            let frame = &packet.bytes;
            let wire_len = frame.len() as u32;
            let records = match bench.try_run(frame) {
                Ok(records) => records.into_iter().map(Some).collect(),
                Err(_) => {
                    refused.insert(index);
                    vec![None; batch.len()]
                }
            };
            for (case, record) in batch.iter().zip(records) {
                checked += 1;
                let reference = pcap_offline_filter(case.program.insns(), frame, wire_len);
                let interpreted = interpret(&case.program, frame, wire_len);
                if interpreted != reference {
                    disagreements.push(format!(
                        "{} on {}: libpcap {reference}, interpreter {interpreted}",
                        case.label, packet.name
                    ));
                }
                let expected_len = reference.min(wire_len).min(MAX_CAPLEN) as usize;
                // The kernel refused to test-run this frame: the interpreter
                // comparison above still counts; the live test sends such
                // frames through a real interface.
                let Some(record) = record else { continue };
                match (reference, record) {
                    (0, None) => {}
                    (0, Some(record)) => disagreements.push(format!(
                        "{} on {}: libpcap rejects, kernel captured {} bytes",
                        case.label,
                        packet.name,
                        record.data.len()
                    )),
                    (_, None) => disagreements.push(format!(
                        "{} on {}: libpcap accepts ({reference}), kernel did not capture",
                        case.label, packet.name
                    )),
                    (_, Some(record)) => {
                        matches += 1;
                        if record.data != frame[..expected_len] || record.wire_len != wire_len {
                            disagreements.push(format!(
                                "{} on {}: kernel captured {} of {} bytes, expected {expected_len} of {wire_len} (bytes equal: {})",
                                case.label,
                                packet.name,
                                record.data.len(),
                                record.wire_len,
                                record.data == frame[..expected_len.min(record.data.len())]
                            ));
                        }
                    }
                }
            }
        }
        // The kernel's own counters agree with what was delivered.
        for (index, client) in bench.clients.iter().enumerate() {
            let counters = bench
                .attachment
                .counters(client.slot())
                .expect("reading counters");
            let expected = packets
                .iter()
                .enumerate()
                .filter(|(index, _)| !refused.contains(index))
                .map(|(_, p)| p)
                .filter(|p| {
                    pcap_offline_filter(
                        batch[index].program.insns(),
                        &p.bytes,
                        p.bytes.len() as u32,
                    ) != 0
                })
                .count() as u64;
            assert_eq!(
                counters.seen,
                (PACKETS - refused.len()) as u64,
                "{}: seen",
                batch[index].label
            );
            assert_eq!(
                counters.matched, expected,
                "{}: matched",
                batch[index].label
            );
            assert_eq!(
                counters.delivered, expected,
                "{}: delivered",
                batch[index].label
            );
            assert_eq!(
                counters.dropped + counters.over_quota,
                0,
                "{}",
                batch[index].label
            );
        }
    }
    // Only frames cut inside their network header may be refused, and few.
    for name in refused.iter().map(|&index| &packets[index].name) {
        assert!(
            name.starts_with("trunc") || name.starts_with("runt") || name.starts_with("badlen"),
            "BPF_PROG_TEST_RUN refused {name}"
        );
    }
    assert!(
        refused.len() < PACKETS / 10,
        "{} frames refused",
        refused.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {checked} verdicts disagree, first ones:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(30)].join("\n")
    );
    // A corpus where (nearly) nothing matches would prove little.
    assert!(
        matches > checked / 20 && matches < checked - checked / 20,
        "{matches} of {checked} verdicts were matches"
    );
    println!(
        "{engine} {hook:?}: {checked} verdicts agree ({matches} kernel matches; {} frames only test-runnable in user space)",
        refused.len()
    );
}
