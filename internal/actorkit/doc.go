// Package actorkit contains the project's use of protoactor-go's system-level API and the workarounds its
// pinned version (v0.0.0-20240822202345-3c0e61ca19c9) needs, so that they live in one place
// (../shared/PROTOACTOR.md):
//
//   - the library logs through slog: System bridges it to zerolog at warn level;
//   - panics inside Receive are recovered without a stack: PanicLogger logs the stack, then re-panics so
//     supervision still runs;
//   - SetReceiveTimeout is one-shot and racy: Timer sends a generation-tagged message instead;
//   - dead letters and supervisor events are counted from the EventStream rather than logged by the library.
//
// It must not import the project's actors, codec or policy packages.
package actorkit
