# checkpoint/: the stream format, writer/reader, page codec, ha-stream tool.
LIB_OBJS += \
	checkpoint/codec.o \
	checkpoint/extdev.o \
	checkpoint/stream.o \
	checkpoint/stream_write.o

LDLIBS += -lzstd -lxxhash

PROGRAMS += ha-stream
ha-stream_OBJS := \
	checkpoint/ha-stream.o

UNIT_TESTS += \
	test_stream \
	test_codec \
	test_extdev

FUZZERS += \
	fuzz_stream \
	fuzz_codec

BENCHES += \
	bench_codec

INTEG_TESTS += \
	tests/integration/stream_cli.sh \
	tests/integration/stream_e2e.sh
