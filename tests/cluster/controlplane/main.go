// Command controlplane is a multi-call binary holding the real Kubernetes
// control-plane components used by the integration tests:
//
//	controlplane etcd ...                embedded etcd 3.6 (go.etcd.io/etcd/server/v3/embed)
//	controlplane apiserver ...           kube-apiserver
//	controlplane controller-manager ...  kube-controller-manager
//	controlplane scheduler ...           kube-scheduler
//	controlplane kubectl ...             kubectl
//
// Every component is meant to run as its own process (started by
// tests/cluster/cluster.py); the binary only dispatches on its first argument.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: controlplane <etcd|apiserver|controller-manager|scheduler|kubectl|version> [flags]`

func main() {
	name := filepath.Base(os.Args[0])
	args := os.Args[1:]
	// Also dispatch on argv[0] (e.g. a symlink named kubectl or kube-apiserver).
	if sub := strings.TrimPrefix(name, "kube-"); isSubcommand(sub) {
		name = sub
	} else if len(args) > 0 {
		name, args = args[0], args[1:]
	} else {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}

	var cmd *cobra.Command
	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "apiserver":
		cmd = apiserverapp.NewAPIServerCommand()
	case "controller-manager":
		cmd = kcmapp.NewControllerManagerCommand()
	case "scheduler":
		cmd = schedulerapp.NewSchedulerCommand()
	case "kubectl", "ctl":
		// kubectl inspects os.Args itself (plugin lookup), so present the
		// arguments as if it had been invoked as a plain "kubectl" binary.
		os.Args = append([]string{"kubectl"}, args...)
		cmd = kubectlcmd.NewDefaultKubectlCommand()
		cmd.SetArgs(args)
		if err := cli.RunNoErrOutput(cmd); err != nil {
			util.CheckErr(err)
		}
		return
	case "version", "--version":
		fmt.Println(versionString())
		return
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n%s\n", name, usage)
		os.Exit(2)
	}
	cmd.SetArgs(args)
	os.Exit(cli.Run(cmd))
}

func isSubcommand(s string) bool {
	switch s {
	case "etcd", "apiserver", "controller-manager", "scheduler", "kubectl":
		return true
	}
	return false
}
