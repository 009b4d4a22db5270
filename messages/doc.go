// Package messages holds the types the actors and the Go API exchange. They carry data only: no logic
// beyond String methods that keep passwords out of logs.
//
// The flow of one request (docs/architecture.md has the picture):
//
//	API --Authenticate/Authorize/Account--> supervisor --StartSession--> connection --spawns--> session
//	session --Outbound--> connection --socket--> server --socket--> reader --Inbound--> session
//	session --Outcome or Prompt--> supervisor --(retry on the next server, or relay)--> API
//	API --UserInput--> session (the answer to a Prompt; what follows comes back through the supervisor)
//	API --Cancel--> supervisor --Abort--> connection --> session (ABORT where the RFC allows)
//	connection --ConnectionLost--> every session, before the connection stops or restarts
//
// It may import tacplus, fsm (for the typed results) and protoactor's actor package (for *actor.PID),
// nothing else of the project.
package messages
