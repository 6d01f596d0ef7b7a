package config

import (
	"crypto/tls"
	"fmt"
)

// TLS names the PEM files of a TLS setup: the node mesh's
// (cluster.transport.tls) or a gateway's listeners'
// (nodes.<name>.gateway.tls). The files are read when the node starts
// (CheckFiles, then app.Start), not after: a renewed certificate takes
// effect at the node's next start. A relative path is relative to the
// working directory.
type TLS struct {
	// CertFile and KeyFile are this side's certificate chain and private
	// key. Required.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile holds the certificates of the authority that signs the other
	// side's certificates. For the node mesh it is required: every node
	// presents its certificate and checks its peer's (mutual TLS). For a
	// gateway it is optional: when set, clients must present a
	// certificate it signed.
	CAFile string `yaml:"ca_file"`
	// ServerName, for the node mesh, is the name every node's certificate
	// must carry (a DNS name among its subject alternative names), such
	// as "guild-node": one name for the whole cluster, whatever the
	// addresses the nodes listen on. Empty: a node's certificate must
	// carry the host (IP address or name) of the endpoint it publishes.
	// Not for a gateway.
	ServerName string `yaml:"server_name"`
}

// validate checks t's fields (not its files: see load) under path p.
func (t *TLS) validate(v *validator, p string, mesh bool) {
	if t == nil {
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		v.fail(p, "cert_file and key_file are both required")
	}
	if mesh && t.CAFile == "" {
		v.fail(p+".ca_file", "required: the nodes check each other's certificates (mutual TLS)")
	}
	if !mesh && t.ServerName != "" {
		v.fail(p+".server_name", "is for cluster.transport.tls only: a gateway serves the name its certificate carries")
	}
}

// MeshConfig returns the tls.Config of the node mesh: each node serves
// and dials with its certificate, and requires and checks its peer's
// against CAFile, under ServerName when set.
func (t *TLS) MeshConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file and key_file: %w", err)
	}
	pool, err := ReadCAFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   t.ServerName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ServerConfig returns the tls.Config of a gateway's listeners: its
// certificate, and, with CAFile, client certificates required and checked.
func (t *TLS) ServerConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file and key_file: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := ReadCAFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}
