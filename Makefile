# kiln - top-level entry points.
#   make demo   build kiln and classify the Fashion-MNIST test set with the bundled model
#   make test   build everything and run the whole test suite (ctest)
# Both install the Debian packages they need when run as root (else they print the
# apt-get line to run).

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_FUZZ ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FMNIST     ?= /usr/share/datasets/fashion-mnist

BUILD_PACKAGES = gcc make cmake pkg-config zlib1g-dev libmicrohttpd-dev libcjson-dev libjpeg-dev libpng-dev
TEST_PACKAGES  = $(BUILD_PACKAGES) clang libclang-rt-14-dev curl
DEMO_PACKAGES  = $(BUILD_PACKAGES) dataset-fashion-mnist

.PHONY: all build demo test test-fast test-asan test-fuzz clean

all: build

build:
	./scripts/ensure-packages.sh $(BUILD_PACKAGES)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo:
	./scripts/ensure-packages.sh $(DEMO_PACKAGES)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	./scripts/demo.sh $(BUILD)/kiln $(FMNIST)

test:
	./scripts/ensure-packages.sh $(TEST_PACKAGES)
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-fuzz

# Unit, golden and CLI tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DKILN_SANITIZE=ON >/dev/null
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS) -L 'unit|golden|cli'

# libFuzzer targets, each run for a short fixed time (needs clang).
test-fuzz:
	@if command -v clang >/dev/null 2>&1; then \
	  CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_FUZZ=ON >/dev/null && \
	  cmake --build $(BUILD_FUZZ) -j $(JOBS) && \
	  cd $(BUILD_FUZZ) && ctest --output-on-failure -L fuzz; \
	else echo "clang not found: skipping fuzz targets"; fi

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ)
