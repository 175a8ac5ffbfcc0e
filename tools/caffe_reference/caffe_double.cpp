// Real Caffe 1.0 forward in double precision (caffe::Net<double>), which pycaffe cannot do:
// pycaffe binds only Net<float>, while libcaffe instantiates every layer for float and double.
//
//   caffe_double PROTOTXT CAFFEMODEL OUTDIR INPUT_NAME INPUT_FILE [INPUT_NAME INPUT_FILE ...]
//
// Each INPUT_FILE holds the input blob's values as raw little-endian doubles (the blob's shape
// comes from the prototxt). After one TEST-phase forward, OUTDIR/blobs.txt lists every blob in
// Net order, one per line: "<index> <num_axes> <dim0> <dim1> ... <name>" (the name last, as it may
// hold spaces or slashes), and OUTDIR/blob<index>.f64 holds its values as raw doubles.
// Built and run inside the bullseye chroot by net_worker.py.
#include <caffe/caffe.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace {

void read_doubles(const std::string& path, caffe::Blob<double>* blob) {
  std::ifstream in(path.c_str(), std::ios::binary);
  in.read(reinterpret_cast<char*>(blob->mutable_cpu_data()), blob->count() * sizeof(double));
  CHECK(in && in.gcount() == static_cast<std::streamsize>(blob->count() * sizeof(double)))
      << "input file " << path << " does not hold " << blob->count() << " doubles";
}

}  // namespace

int main(int argc, char** argv) {
  CHECK(argc >= 4 && argc % 2 == 0) << "usage: caffe_double PROTOTXT CAFFEMODEL OUTDIR "
                                       "[INPUT_NAME INPUT_FILE]...";
  caffe::Caffe::set_mode(caffe::Caffe::CPU);
  caffe::Net<double> net(argv[1], caffe::TEST);
  net.CopyTrainedLayersFrom(argv[2]);
  const std::string out_dir = argv[3];
  for (int i = 4; i < argc; i += 2) {
    CHECK(net.has_blob(argv[i])) << "no blob named " << argv[i];
    read_doubles(argv[i + 1], net.blob_by_name(argv[i]).get());
  }
  net.Forward();

  std::ofstream listing((out_dir + "/blobs.txt").c_str());
  const std::vector<std::string>& names = net.blob_names();
  for (size_t i = 0; i < names.size(); ++i) {
    const caffe::Blob<double>& blob = *net.blobs()[i];
    listing << i << " " << blob.num_axes();
    for (int axis = 0; axis < blob.num_axes(); ++axis) listing << " " << blob.shape(axis);
    listing << " " << names[i] << "\n";
    std::ofstream values((out_dir + "/blob" + std::to_string(i) + ".f64").c_str(),
                         std::ios::binary);
    values.write(reinterpret_cast<const char*>(blob.cpu_data()), blob.count() * sizeof(double));
  }
  return 0;
}
