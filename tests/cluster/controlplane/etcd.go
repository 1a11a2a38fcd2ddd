package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"k8s.io/component-base/version"
)

// runEtcd runs a single-member embedded etcd until SIGTERM/SIGINT.
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "etcd data directory (required)")
	clientAddr := fs.String("listen-client", "127.0.0.1:2379", "host:port for client traffic (plain http)")
	peerAddr := fs.String("listen-peer", "127.0.0.1:2380", "host:port for peer traffic (plain http)")
	name := fs.String("name", "controlplane", "member name")
	noFsync := fs.Bool("unsafe-no-fsync", false, "disable fsync (tests only)")
	logLevel := fs.String("log-level", "warn", "log level (debug, info, warn, error)")
	quota := fs.Int64("quota-backend-bytes", 2<<30, "backend quota in bytes")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "etcd: --data-dir is required")
		return 2
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	}
	// etcd refuses (or warns about) data directories with looser permissions.
	_ = os.Chmod(*dataDir, 0o700)

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.UnsafeNoFsync = *noFsync
	cfg.LogLevel = *logLevel
	cfg.QuotaBackendBytes = *quota
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	// embed.NewConfig leaves these at 0 (etcd's flag parser sets the
	// defaults), which would log every single request as slow.
	if cfg.WarningUnaryRequestDuration == 0 {
		cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}
	if cfg.WarningApplyDuration == 0 {
		cfg.WarningApplyDuration = embed.DefaultWarningApplyDuration
	}
	client := url.URL{Scheme: "http", Host: *clientAddr}
	peer := url.URL{Scheme: "http", Host: *peerAddr}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: start:", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "etcd ready on http://%s (kubernetes %s)\n", *clientAddr, version.Get().GitVersion)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		fmt.Fprintf(os.Stderr, "etcd: got %v, shutting down\n", s)
		return 0
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd: error:", err)
		return 1
	}
}

func versionString() string {
	v := version.Get()
	return fmt.Sprintf("Kubernetes %s (etcd embedded, %s)", v.GitVersion, v.GoVersion)
}
