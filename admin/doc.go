// Package admin is guild's admin dashboard: a web page that shows every
// member of a cluster live (actors, message rates, mailbox backlogs, RPC
// rates and latencies, gateway sessions, grains) and offers a few actions
// (mark a node unavailable or available again, drain it, kick a user).
//
// It has two parts:
//
//   - An Agent runs on every node: one actor, registered under the global
//     name AgentName(addr) (or its local form on a node without global
//     names), that answers the dashboards with the node's Snapshot and
//     carries out the actions aimed at its node. It costs nothing between
//     requests.
//   - A Server runs on the nodes that serve the page (Serve): an HTTP
//     listener with the page (built with Vite and TypeScript from web/,
//     its dist/ embedded), a JSON API and a stream of Server-Sent Events.
//     It gathers every member's snapshot over the cluster, each with a
//     deadline, so a node that is down shows as unreachable and never
//     holds the page up; the browser talks to the serving node only.
//
// Package app starts both from the cluster file's admin section; from Go,
// StartAgent on every node and Serve on one. Package admin is a leaf:
// the runtime's packages do not import it.
//
// docs/OPERATING.md ("The admin dashboard") describes the page and the
// API; docs/CONFIG.md the admin section.
package admin
