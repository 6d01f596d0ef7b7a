package gate

import (
	"net/http"
)

// allowOrigin checks a WebSocket upgrade's Origin header against
// Config.Origins (see package gate/origin) and, if it is refused, answers
// 403 Forbidden with the reason and returns false. The check is made
// before the upgrade: a refused page costs one HTTP response, no session.
func (g *Gateway) allowOrigin(w http.ResponseWriter, r *http.Request) bool {
	err := g.origins.Allow(r.Header.Get("Origin"), r.Host)
	if err == nil {
		return true
	}
	g.log.Debug("gate: websocket origin refused", "remote", r.RemoteAddr, "err", err)
	w.Header().Set("Connection", "close")
	http.Error(w, "gate: "+err.Error()+"; the gateway's Origins setting (gateway.ws_origins) lists the pages allowed", http.StatusForbidden)
	return false
}
