// Command pause holds a pod sandbox's namespaces open until it is told to stop, as Kubernetes' own
// pause image does; invsync builds it so the local node needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	// The kubelet's sandboxes do not share their PID namespace here, so there are no orphans to reap.
	<-stop
}
