# tools/: ha-ctl.
PROGRAMS += ha-ctl
ha-ctl_OBJS := \
	tools/ha-ctl.o

PROGRAMS += ha-client
ha-client_OBJS := \
	tools/ha-client.o

# ha-save, ha-restore, ha-migrate: save, restore and migration on the
# checkpoint machinery (shell drivers of ha-protect, ha-receive and
# ha-stream), installed in sbin beside the daemons they run.
EXTRA_ALL += \
	$(B)/bin/ha-save \
	$(B)/bin/ha-restore \
	$(B)/bin/ha-migrate

# ha-sla: the SLA / epoch-interval report (a shell driver and its report
# writer), copied into bin/ beside the programs it drives.
EXTRA_ALL += \
	$(B)/bin/ha-sla \
	$(B)/bin/ha-sla-report
INSTALL_SCRIPTS += \
	ha-sla \
	ha-sla-report

$(B)/bin/%: tools/%.sh
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  INSTALL $@")
	$(Q)install -m 0755 $< $@

INTEG_TESTS += \
	tests/integration/sla_report.sh \
	tests/integration/monitoring.sh \
	tests/integration/install.sh \
	tests/integration/deb.sh \
	tests/integration/doc_examples.sh

# ha-client counter against the counter guest's service on the host.
UNIT_TESTS += \
	test_client
