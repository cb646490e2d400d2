package testenv

import (
	"bufio"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/netns"
)

// Netns is a network namespace a test created; it is deleted (with its
// interfaces and processes' sockets) when the test ends.
type Netns struct {
	Name string
}

// NewNetns creates a namespace with loopback up. It needs root and the ip
// tool.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	RequireRoot(t)
	RequireCommands(t, "ip")
	n := &Netns{Name: "ld-" + RandomSuffix(8)}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		// Kill anything left running inside before deleting.
		if out, err := exec.Command("ip", "netns", "pids", n.Name).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v %s", n.Name, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Run runs a command inside the namespace and fails the test if it fails.
func (n *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Command prepares a command to run inside the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Start starts a command inside the namespace, kills it when the test
// ends, and returns it with the first line it prints: the command says
// it is ready (and, say, which port it bound) by printing that line.
func (n *Netns) Start(t testing.TB, name string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := n.Command(name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s in namespace %s printed no line: %v", name, n.Name, err)
	}
	return cmd, strings.TrimSpace(line)
}

// Do runs fn on an OS thread switched into the namespace (netns.Run).
// fn runs on a goroutine of its own, so it returns errors and never calls
// t.Fatal (sockettest.For(t) makes sockets that way). Sockets created in
// fn belong to the namespace and keep working from any goroutine
// afterwards; goroutines started inside fn do not inherit the namespace.
func (n *Netns) Do(fn func() error) error {
	return netns.Run("/run/netns/"+n.Name, fn)
}

// Veth joins two namespaces with a veth pair, names each end, gives each an
// address (CIDR form, e.g. "10.0.0.1/24" inside the test's own namespaces)
// and an MTU, and brings both up.
func Veth(t testing.TB, a *Netns, aIf, aAddr string, b *Netns, bIf, bAddr string, mtu int) {
	t.Helper()
	tmpA, tmpB := "va"+RandomSuffix(8), "vb"+RandomSuffix(8)
	Run(t, "ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB)
	Run(t, "ip", "link", "set", tmpA, "netns", a.Name)
	Run(t, "ip", "link", "set", tmpB, "netns", b.Name)
	for _, e := range []struct {
		ns        *Netns
		tmp, name string
		addr      string
	}{{a, tmpA, aIf, aAddr}, {b, tmpB, bIf, bAddr}} {
		e.ns.Run(t, "ip", "link", "set", e.tmp, "name", e.name)
		e.ns.Run(t, "ip", "link", "set", e.name, "mtu", fmt.Sprint(mtu))
		if e.addr != "" {
			args := []string{"addr", "add", e.addr, "dev", e.name}
			if strings.Contains(e.addr, ":") {
				args = []string{"-6", "addr", "add", e.addr, "dev", e.name, "nodad"}
			}
			e.ns.Run(t, "ip", args...)
		}
		e.ns.Run(t, "ip", "link", "set", e.name, "up")
	}
}
