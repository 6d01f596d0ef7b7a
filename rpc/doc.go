// Package rpc is guild's typed RPC: services described in .proto files,
// hosted as actors, called like functions from any node.
//
// "guild gen" (or protoc with protoc-gen-guild) writes, for each service,
// a server interface with a Register function and a typed client; see
// package rpcgen for what exactly. This package is what that code calls.
//
// # Serving
//
// Serve (through the generated RegisterXxxServer) hosts a handler as an
// actor. Its methods run one call at a time in that actor and get a
// *Context: the caller's deadline, the caller, and the actor context for
// timers, sends and requests of its own. The actor is registered under
// LocalServiceName on its node and, on a cluster node, under the global
// NodeServiceName, which is how node-type targets find it; WithName adds a
// name of your choice.
//
// # Calling
//
// A Client calls from one node. A Target is a PID (To), a name (Named), or
// a node type with a pick (AnyOf with cluster.Random or cluster.RoundRobin;
// ByKey for consistent hashing). When the target is on the caller's node
// the request is handed to the handler as it is: no encoding, no copy, no
// socket. The caller must then not change the request after passing it,
// and the handler must not change a request it keeps. Otherwise the
// request is encoded into an rpcpb.Call and crosses the mesh; both paths
// behave the same to the caller, errors and deadlines included.
//
// Generated clients offer a blocking call (ctx's deadline travels to the
// handler; ctx's end stops the wait at once), an asynchronous call from
// inside an actor whose callback runs in that actor's turn, and, for
// methods returning google.protobuf.Empty, a one-way send.
//
// # Errors
//
// Every error a call returns is a *Status: a Code and a message. A handler
// returns one with Error or Errorf (any other error arrives as Unknown);
// it crosses nodes intact and matches, with errors.Is, any Status of the
// same code. Runtime failures get the code they stand for and still wrap
// their cause: a lost peer is Unavailable and matches
// transport.ErrPeerLost, a timeout is DeadlineExceeded. A panicking
// handler answers Internal, with its stack logged on the serving node,
// which lives on. An unknown method answers Unimplemented; a request that
// does not decode, InvalidArgument.
//
// # Interceptors
//
// Client and server interceptors have one shape, Interceptor: they see the
// call's CallInfo and request, call next (or not), and see the reply and
// error. The first one given runs outermost.
//
// # Metadata
//
// A call carries the actor.Metadata of its context (WithMetadata), on the
// caller's node and across nodes alike; the handler and the server
// interceptors read it with IncomingMetadata. A client interceptor adds to
// it by passing on a context of its own (trace context, an auth token). A
// request routed by a gateway carries the session's ID and user ID (see
// package gate's MetadataSessionID and MetadataUserID). Metadata is not
// passed on by the calls a handler makes unless it says so.
package rpc
