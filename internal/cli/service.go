package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"lanlink/internal/service"
)

// newServiceCmd: `lanlink service install|uninstall|unit`, the agent as a
// systemd service. The unit and the install logic live in package service;
// this file only turns flags into service.UnitOptions.
func newServiceCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Run the site agent as a systemd service",
		Long: `Install, remove or show the systemd service that runs "lanlink up" for one
interface: lanlink-IFACE.service, hardened, restarted on failure and by its
watchdog, reloaded with "systemctl reload".`,
	}
	var (
		iface, keyFile, binary string
	)
	options := func() (service.UnitOptions, error) {
		bin := binary
		if bin == "" {
			exe, err := os.Executable()
			if err != nil {
				return service.UnitOptions{}, fmt.Errorf("find the lanlink binary (pass --binary): %w", err)
			}
			if bin, err = filepath.EvalSymlinks(exe); err != nil {
				return service.UnitOptions{}, fmt.Errorf("find the lanlink binary (pass --binary): %w", err)
			}
		}
		o := service.UnitOptions{Binary: bin, PlanPath: e.planPath, KeyPath: keyFile, Interface: iface}
		// systemd does not run the service in this directory.
		for _, p := range []*string{&o.Binary, &o.PlanPath, &o.KeyPath} {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return o, err
			}
			*p = abs
		}
		return o, nil
	}
	unitFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&iface, "interface", "lanlink0", "the tunnel interface")
		c.Flags().StringVar(&keyFile, "key", e.defaultKey(), "this gateway's private key")
		c.Flags().StringVar(&binary, "binary", "", "the lanlink binary the service runs (default: this one)")
	}

	install := &cobra.Command{
		Use:   "install [--interface NAME] [--key FILE] [--binary PATH]",
		Short: "Install, enable and start the service; undone again if any step fails",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := options()
			if err != nil {
				return err
			}
			for _, f := range []struct{ what, path string }{{"plan", o.PlanPath}, {"key", o.KeyPath}} {
				if _, err := os.Stat(f.path); err != nil {
					return fmt.Errorf("%s for the service: %w", f.what, err)
				}
			}
			sys, err := service.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer sys.Close()
			m := &service.Manager{Systemd: sys, Logger: e.log}
			if err := m.Install(cmd.Context(), o); err != nil {
				return err
			}
			name := service.UnitName(o.Interface)
			fmt.Fprintf(e.stderr, "%s installed, enabled and running; see `systemctl status %s`\n", name, name)
			return nil
		},
	}
	unitFlags(install)

	uninstall := &cobra.Command{
		Use:   "uninstall [--interface NAME]",
		Short: "Stop, disable and remove the service",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, err := service.Connect(cmd.Context())
			if err != nil {
				return err
			}
			defer sys.Close()
			m := &service.Manager{Systemd: sys, Logger: e.log}
			if err := m.Uninstall(cmd.Context(), iface); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "%s stopped and removed\n", service.UnitName(iface))
			return nil
		},
	}
	uninstall.Flags().StringVar(&iface, "interface", "lanlink0", "the tunnel interface")

	unit := &cobra.Command{
		Use:   "unit [--interface NAME] [--key FILE] [--binary PATH]",
		Short: "Print the unit file install would write",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := options()
			if err != nil {
				return err
			}
			text, err := service.Unit(o)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(e.stdout, text)
			return err
		},
	}
	unitFlags(unit)

	cmd.AddCommand(install, uninstall, unit)
	return cmd
}
