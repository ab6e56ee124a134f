"""The TensorFlow op types an untrusted SavedModel may run: ops that only compute on tensors.

Evaluating a node runs whatever the graph says, and a graph is written by whoever made
the file; its node and function names prove nothing. So what may run is decided by op
type alone, from this allow-list; anything else needs the user's trust. Each family
below says why it is here. Deliberately absent: every op that opens, writes, renames
or deletes files (WriteFile, SaveV2, MergeV2Checkpoints, summary writers, tf.data
caches, snapshots and file readers), runs Python (PyFunc), talks to other processes
or machines (Send/Recv, collectives, data service, RemoteCall) or maps a file
(ImmutableConst). ``RestoreV2`` / ``Restore`` / ``RestoreSlice`` and ``PrintV2`` are
judged by their inputs and attributes in ``vetting``, not here.

``EFFECTS`` says in a few words what known unsafe ops do, for the trust prompt; it is
never consulted to decide (an op missing from both tables simply needs trust).
"""

from __future__ import annotations


def _ops(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Constants, placeholders and the identity family: they produce or forward a tensor.
SOURCES_AND_IDENTITY = _ops("""
    Const Placeholder PlaceholderV2 PlaceholderWithDefault Identity IdentityN RefIdentity
    Snapshot StopGradient PreventGradient GuaranteeConst DebugGradientIdentity
    DebugGradientRefIdentity DeepCopy EnsureShape CheckNumerics CheckNumericsV2 Assert
    Print Timestamp NoOp
""")

# Element-wise math, reductions, comparisons, casts and matmuls (gen_math_ops, bitwise,
# special functions): pure functions of their inputs.
MATH = _ops("""
    Abs AccumulateNV2 Acos Acosh Add AddN AddV2 All Angle Any ApproximateEqual ArgMax ArgMin
    Asin Asinh Atan Atan2 Atanh BatchMatMul BatchMatMulV2 BatchMatMulV3 Betainc Bincount
    Bucketize Cast Ceil ClipByValue Complex ComplexAbs Conj Cos Cosh Cross Cumprod Cumsum
    CumulativeLogsumexp DenseBincount Digamma Div DivNoNan Equal Erf Erfc Erfinv EuclideanNorm
    Exp Expm1 Floor FloorDiv FloorMod Greater GreaterEqual HistogramFixedWidth Igamma
    IgammaGradA Igammac Imag Inv InvGrad IsFinite IsInf IsNan Less LessEqual Lgamma LinSpace Log
    Log1p LogicalAnd LogicalNot LogicalOr MatMul Max Maximum Mean Min Minimum Mod Mul MulNoNan
    Ndtri Neg NextAfter NotEqual Polygamma Pow Prod QuantizeDownAndShrinkRange QuantizedAdd
    QuantizedMatMul QuantizedMul RaggedBincount Range Real RealDiv Reciprocal ReciprocalGrad
    RequantizationRange RequantizationRangePerChannel Requantize RequantizePerChannel Rint
    Round Rsqrt RsqrtGrad SegmentMax SegmentMaxV2 SegmentMean SegmentMin SegmentMinV2
    SegmentProd SegmentProdV2 SegmentSum SegmentSumV2 Select SelectV2 Sigmoid SigmoidGrad Sign
    Sin Sinh SobolSample SparseBincount SparseMatMul SparseSegmentMean SparseSegmentMeanGrad
    SparseSegmentMeanGradV2 SparseSegmentMeanWithNumSegments SparseSegmentSqrtN
    SparseSegmentSqrtNGrad SparseSegmentSqrtNGradV2 SparseSegmentSqrtNWithNumSegments
    SparseSegmentSum SparseSegmentSumGrad SparseSegmentSumGradV2
    SparseSegmentSumWithNumSegments Sqrt SqrtGrad Square SquaredDifference Sub Sum Tan Tanh
    TanhGrad TruncateDiv TruncateMod UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd
    UnsortedSegmentSum Xdivy Xlog1py Xlogy Zeta
    BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift PopulationCount RightShift
    BesselI0 BesselI0e BesselI1 BesselI1e BesselJ0 BesselJ1 BesselK0 BesselK0e BesselK1
    BesselK1e BesselY0 BesselY1 Dawsn Expint FresnelCos FresnelSin Spence
    DenseCountSparseOutput RaggedCountSparseOutput SparseCountSparseOutput
""")

# Shape, slicing, gathering, padding and layout ops (gen_array_ops without ImmutableConst,
# which maps a file): they rearrange tensor memory.
ARRAY = _ops("""
    BatchMatrixBandPart BatchMatrixDiag BatchMatrixDiagPart BatchMatrixSetDiag BatchToSpace
    BatchToSpaceND Bitcast BroadcastArgs BroadcastGradientArgs BroadcastTo Concat ConcatOffset
    ConcatV2 ConjugateTranspose DepthToSpace Dequantize Diag DiagPart EditDistance Empty
    ExpandDims ExtractImagePatches ExtractVolumePatches FakeQuantWithMinMaxArgs
    FakeQuantWithMinMaxArgsGradient FakeQuantWithMinMaxVars FakeQuantWithMinMaxVarsGradient
    FakeQuantWithMinMaxVarsPerChannel FakeQuantWithMinMaxVarsPerChannelGradient Fill
    Fingerprint Gather GatherNd GatherV2 InplaceAdd InplaceSub InplaceUpdate InvertPermutation
    ListDiff LowerBound MatrixBandPart MatrixDiag MatrixDiagPart MatrixDiagPartV2
    MatrixDiagPartV3 MatrixDiagV2 MatrixDiagV3 MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3
    MirrorPad MirrorPadGrad OneHot OnesLike Pack Pad PadV2 ParallelConcat
    QuantizeAndDequantize QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
    QuantizeAndDequantizeV4 QuantizeAndDequantizeV4Grad QuantizeV2 QuantizedConcat
    QuantizedInstanceNorm QuantizedReshape Rank Reshape ResourceStridedSliceAssign Reverse
    ReverseSequence ReverseV2 Roll ScatterNd ScatterNdNonAliasingAdd Shape ShapeN Size Slice
    SpaceToBatch SpaceToBatchND SpaceToDepth Split SplitV Squeeze StridedSlice
    StridedSliceAssign StridedSliceGrad TensorScatterAdd TensorScatterMax TensorScatterMin
    TensorScatterSub TensorScatterUpdate TensorStridedSliceUpdate Tile TileGrad Transpose
    Unique UniqueV2 UniqueWithCounts UniqueWithCountsV2 Unpack UnravelIndex UpperBound Where
    ZerosLike DynamicPartition DynamicStitch ParallelDynamicStitch
""")

# Neural-network layers (gen_nn_ops, fused kernels Grappler or exporters leave in graphs,
# linear algebra, FFTs, CTC, RNN cells, image resizing and decoding of in-memory bytes):
# arithmetic on tensors. The CudnnRNN family is cuDNN's fused RNN (forward, gradient and
# weight-layout conversions) on tensors and a scratch space in device memory: every Keras 2
# LSTM/GRU saves it as the GPU alternative of its layer function (``api_implements``).
NN = _ops("""
    ApproxTopK AvgPool AvgPool3D AvgPool3DGrad AvgPoolGrad BatchNormWithGlobalNormalization
    BatchNormWithGlobalNormalizationGrad BiasAdd BiasAddGrad BiasAddV1 Conv Conv2D
    Conv2DBackpropFilter Conv2DBackpropFilterV2 Conv2DBackpropInput Conv2DBackpropInputV2
    Conv3D Conv3DBackpropFilter Conv3DBackpropFilterV2 Conv3DBackpropInput
    Conv3DBackpropInputV2 DataFormatDimMap DataFormatVecPermute DepthwiseConv2dNative
    DepthwiseConv2dNativeBackpropFilter DepthwiseConv2dNativeBackpropInput Dilation2D
    Dilation2DBackpropFilter Dilation2DBackpropInput Elu EluGrad FractionalAvgPool
    FractionalAvgPoolGrad FractionalMaxPool FractionalMaxPoolGrad FusedBatchNorm
    FusedBatchNormGrad FusedBatchNormGradV2 FusedBatchNormGradV3 FusedBatchNormV2
    FusedBatchNormV3 FusedPadConv2D FusedResizeAndPadConv2D InTopK InTopKV2 IsotonicRegression
    L2Loss LRN LRNGrad LeakyRelu LeakyReluGrad LogSoftmax MaxPool MaxPool3D MaxPool3DGrad
    MaxPool3DGradGrad MaxPoolGrad MaxPoolGradGrad MaxPoolGradGradV2 MaxPoolGradGradWithArgmax
    MaxPoolGradV2 MaxPoolGradWithArgmax MaxPoolV2 MaxPoolWithArgmax NthElement
    QuantizedAvgPool QuantizedBatchNormWithGlobalNormalization QuantizedBiasAdd
    QuantizedConv2D QuantizedConv2DPerChannel QuantizedDepthwiseConv2D QuantizedMatMulWithBias
    QuantizedMaxPool QuantizedRelu QuantizedRelu6 QuantizedReluX Relu Relu6 Relu6Grad ReluGrad
    Selu SeluGrad Softmax SoftmaxCrossEntropyWithLogits Softplus SoftplusGrad Softsign
    SoftsignGrad SparseSoftmaxCrossEntropyWithLogits TopK TopKV2
    _FusedMatMul _FusedConv2D _FusedConv3D _FusedDepthwiseConv2dNative _FusedBatchNormEx
    BandedTriangularSolve Cholesky CholeskyGrad Eig Einsum LogMatrixDeterminant Lu
    MatrixDeterminant MatrixExponential MatrixInverse MatrixLogarithm MatrixSolve
    MatrixSolveLs MatrixSquareRoot MatrixTriangularSolve Qr SelfAdjointEig SelfAdjointEigV2
    Svd TridiagonalMatMul TridiagonalSolve
    FFT FFT2D FFT3D FFTND IFFT IFFT2D IFFT3D IFFTND IRFFT IRFFT2D IRFFT3D IRFFTND RFFT RFFT2D
    RFFT3D RFFTND
    CTCBeamSearchDecoder CTCGreedyDecoder CTCLoss CTCLossV2
    BlockLSTM BlockLSTMV2 GRUBlockCell LSTMBlockCell
    CudnnRNN CudnnRNNV2 CudnnRNNV3 CudnnRNNBackprop CudnnRNNBackpropV2 CudnnRNNBackpropV3
    CudnnRNNCanonicalToParams CudnnRNNCanonicalToParamsV2 CudnnRNNParamsSize
    CudnnRNNParamsToCanonical CudnnRNNParamsToCanonicalV2
    UniformDequantize UniformQuantize UniformQuantizedAdd UniformQuantizedClipByValue
    UniformQuantizedConvolution UniformQuantizedConvolutionHybrid UniformQuantizedDot
    UniformQuantizedDotHybrid UniformRequantize
    AdjustContrast AdjustContrastv2 AdjustHue AdjustSaturation CombinedNonMaxSuppression
    CropAndResize DecodeAndCropJpeg DecodeBmp DecodeGif DecodeImage DecodeJpeg DecodePng
    DecodeWebP DrawBoundingBoxes DrawBoundingBoxesV2 EncodeJpeg EncodeJpegVariableQuality
    EncodePng ExtractGlimpse ExtractGlimpseV2 ExtractJpegShape HSVToRGB
    ImageProjectiveTransformV2 ImageProjectiveTransformV3 NonMaxSuppression
    NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5
    NonMaxSuppressionWithOverlaps RGBToHSV ResizeArea ResizeBicubic ResizeBilinear
    ResizeNearestNeighbor ScaleAndTranslate AudioSpectrogram DecodeWav EncodeWav Mfcc
""")

# Random numbers: stateless ones are functions of a seed; stateful ones keep a generator
# in memory (resource handles, never files).
RANDOM = _ops("""
    Multinomial ParameterizedTruncatedNormal RandomGamma RandomPoisson RandomPoissonV2
    RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt TruncatedNormal
    StatelessMultinomial StatelessParameterizedTruncatedNormal StatelessRandomBinomial
    StatelessRandomGammaV2 StatelessRandomGammaV3 StatelessRandomNormal StatelessRandomPoisson
    StatelessRandomUniform StatelessRandomUniformFullInt StatelessRandomUniformInt
    StatelessTruncatedNormal StatelessRandomGetAlg StatelessRandomGetKeyCounter
    StatelessRandomGetKeyCounterAlg StatelessRandomNormalV2 StatelessRandomUniformFullIntV2
    StatelessRandomUniformIntV2 StatelessRandomUniformV2 StatelessShuffle
    StatelessTruncatedNormalV2 RandomIndexShuffle NonDeterministicInts RngReadAndSkip RngSkip
    StatefulRandomBinomial StatefulStandardNormal StatefulStandardNormalV2
    StatefulTruncatedNormal StatefulUniform StatefulUniformFullInt StatefulUniformInt
""")

# Strings, parsing of serialized protos held in tensors, sparse and ragged tensors, sets:
# computations on tensor contents (none of them reads a path).
STRINGS_SPARSE_RAGGED = _ops("""
    AsString DecodeBase64 EncodeBase64 ReduceJoin RegexFullMatch RegexReplace
    StaticRegexFullMatch StaticRegexReplace StringFormat StringJoin StringLength StringLower
    StringNGrams StringSplit StringSplitV2 StringStrip StringToHashBucket
    StringToHashBucketFast StringToHashBucketStrong StringUpper Substr UnicodeDecode
    UnicodeDecodeWithOffsets UnicodeEncode UnicodeScript UnicodeTranscode UnsortedSegmentJoin
    DecodeCSV DecodeCompressed DecodeJSONExample DecodePaddedRaw DecodeRaw ParseExample
    ParseExampleV2 ParseSequenceExample ParseSequenceExampleV2 ParseSingleExample
    ParseSingleSequenceExample ParseTensor SerializeTensor StringToNumber
    DeserializeManySparse DeserializeSparse SerializeManySparse SerializeSparse SparseAdd
    SparseConcat SparseCross SparseCrossHashed SparseCrossV2 SparseDenseCwiseAdd
    SparseDenseCwiseDiv SparseDenseCwiseMul SparseFillEmptyRows SparseReduceMax
    SparseReduceMaxSparse SparseReduceSum SparseReduceSumSparse SparseReorder SparseReshape
    SparseSlice SparseSoftmax SparseSparseMaximum SparseSparseMinimum SparseSplit
    SparseTensorDenseAdd SparseTensorDenseMatMul SparseToDense
    RaggedCross RaggedFillEmptyRows RaggedGather RaggedRange RaggedTensorFromVariant
    RaggedTensorToSparse RaggedTensorToTensor RaggedTensorToVariant
    DenseToDenseSetOperation DenseToSparseSetOperation SetSize SparseToSparseSetOperation
    CompositeTensorVariantFromComponents CompositeTensorVariantToComponents
""")

# Control flow. Function-calling ops are allowed only because vetting walks the
# functions they call (every function-valued attribute) with the same rules.
CONTROL_FLOW = _ops("""
    Switch Merge Enter Exit NextIteration LoopCond ControlTrigger RefSwitch RefMerge RefEnter
    RefExit RefNextIteration RefSelect
    If StatelessIf While StatelessWhile Case StatelessCase For ToBool FakeParam DeviceIndex
    PartitionedCall StatefulPartitionedCall SymbolicGradient
""")

# Variables and in-memory containers: variables are read, assigned and initialised (a
# loaded model does this); tensor lists/arrays/maps, stacks, optionals and lookup tables
# filled from tensors live in the session's memory.
STATE = _ops("""
    VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp AssignSubVariableOp
    VarIsInitializedOp VariableShape DestroyResourceOp DisableCopyOnRead ResourceGather
    ResourceGatherNd ResourceScatterAdd ResourceScatterDiv ResourceScatterMax
    ResourceScatterMin ResourceScatterMul ResourceScatterSub ResourceScatterUpdate
    ResourceScatterNdAdd ResourceScatterNdMax ResourceScatterNdMin ResourceScatterNdSub
    ResourceScatterNdUpdate MutexV2 MutexLock ConsumeMutexLock
    Variable VariableV2 Assign AssignAdd AssignSub IsVariableInitialized TemporaryVariable
    DestroyTemporaryVariable CountUpTo ResourceCountUpTo ScatterAdd ScatterDiv ScatterMax
    ScatterMin ScatterMul ScatterNdAdd ScatterNdMax ScatterNdMin ScatterNdSub ScatterNdUpdate
    ScatterSub ScatterUpdate
    EmptyTensorList TensorListConcat TensorListConcatLists TensorListConcatV2
    TensorListElementShape TensorListFromTensor TensorListGather TensorListGetItem
    TensorListLength TensorListPopBack TensorListPushBack TensorListPushBackBatch
    TensorListReserve TensorListResize TensorListScatter TensorListScatterIntoExistingList
    TensorListScatterV2 TensorListSetItem TensorListSplit TensorListStack
    EmptyTensorMap TensorMapErase TensorMapHasKey TensorMapInsert TensorMapLookup
    TensorMapSize TensorMapStackKeys OptionalFromValue OptionalGetValue OptionalHasValue
    OptionalNone
    TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3
    TensorArrayScatterV3 TensorArrayConcatV3 TensorArraySplitV3 TensorArraySizeV3
    TensorArrayCloseV3 TensorArrayGradV3 TensorArrayGradWithShape TensorArrayV2
    TensorArrayReadV2 TensorArrayWriteV2 TensorArrayGatherV2 TensorArrayScatterV2
    TensorArrayConcatV2 TensorArraySplitV2 TensorArraySizeV2 TensorArrayCloseV2
    StackV2 StackPushV2 StackPopV2 StackCloseV2
    HashTable HashTableV2 AnonymousHashTable MutableHashTable MutableHashTableV2
    AnonymousMutableHashTable MutableHashTableOfTensors MutableHashTableOfTensorsV2
    AnonymousMutableHashTableOfTensors MutableDenseHashTable MutableDenseHashTableV2
    AnonymousMutableDenseHashTable InitializeTable InitializeTableV2 LookupTableFind
    LookupTableFindV2 LookupTableImport LookupTableImportV2 LookupTableExport
    LookupTableExportV2 LookupTableInsert LookupTableInsertV2 LookupTableRemoveV2
    LookupTableSize LookupTableSizeV2
""")

# tf.data over tensors already in memory: sources from tensors or ranges, transformations
# (their functions are vetted too), iterators and in-memory caches. File-backed sources,
# caches to files, snapshots, save/load and the data service are not here.
DATASETS = _ops("""
    TensorDataset TensorSliceDataset SparseTensorSliceDataset RangeDataset RepeatDataset
    TakeDataset SkipDataset ShuffleDataset ShuffleDatasetV2 ShuffleDatasetV3
    ShuffleAndRepeatDataset ShuffleAndRepeatDatasetV2 BatchDataset BatchDatasetV2
    PaddedBatchDataset PaddedBatchDatasetV2 ParallelBatchDataset MapDataset
    ParallelMapDataset ParallelMapDatasetV2 FilterDataset ParallelFilterDataset FlatMapDataset
    InterleaveDataset ParallelInterleaveDatasetV2 ParallelInterleaveDatasetV3
    ParallelInterleaveDatasetV4 PrefetchDataset ZipDataset ConcatenateDataset WindowDataset
    ShardDataset ReduceDataset DatasetToSingleElement DatasetCardinality OptionsDataset
    ModelDataset OptimizeDataset OptimizeDatasetV2 FinalizeDataset
    MaxIntraOpParallelismDataset PrivateThreadPoolDataset ScanDataset TakeWhileDataset
    UniqueDataset UnbatchDataset RebatchDatasetV2 AssertCardinalityDataset
    MapAndBatchDataset GroupByWindowDataset GroupByReducerDataset IgnoreErrorsDataset
    AnonymousIterator AnonymousIteratorV2 AnonymousIteratorV3 IteratorV2 Iterator
    MakeIterator IteratorGetNext IteratorGetNextSync IteratorGetNextAsOptional DeleteIterator
    AnonymousMemoryCache DummyMemoryCache DeleteMemoryCache AnonymousSeedGenerator
    AnonymousRandomSeedGenerator DummySeedGenerator DeleteSeedGenerator
    DeleteRandomSeedGenerator WrapDatasetVariant UnwrapDatasetVariant
""")

ALLOWED: frozenset[str] = (
    SOURCES_AND_IDENTITY
    | MATH
    | ARRAY
    | NN
    | RANDOM
    | STRINGS_SPARSE_RAGGED
    | CONTROL_FLOW
    | STATE
    | DATASETS
)

# Ops that restore variables: allowed only when their prefix input is the file name the
# loader feeds with the SavedModel's own ``variables/variables`` (checked by vetting).
RESTORE_OPS = _ops("RestoreV2 Restore RestoreSlice")

# PrintV2 is allowed when it prints to the process's own streams, not to a file.
PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})


def _effect(text: str, what: str) -> dict[str, str]:
    return dict.fromkeys(text.split(), what)


# What known unsafe ops do, in the words of the trust prompt.
EFFECTS: dict[str, str] = {
    **_effect("WriteFile", "writes files"),
    **_effect("SaveV2 Save SaveSlices", "writes checkpoints"),
    **_effect("MergeV2Checkpoints", "merges and deletes checkpoint files"),
    **_effect("CacheDataset CacheDatasetV2", "writes a cache file"),
    **_effect(
        "SaveDataset SaveDatasetV2 ExperimentalSaveDataset DatasetToTFRecord "
        "ExperimentalDatasetToTFRecord SnapshotDataset SnapshotDatasetV2 DistributedSave",
        "writes dataset files",
    ),
    **_effect(
        "CreateSummaryFileWriter CreateSummaryDbWriter SummaryWriter WriteSummary "
        "WriteScalarSummary WriteHistogramSummary WriteImageSummary WriteAudioSummary "
        "WriteGraphSummary WriteRawProtoSummary ImportEvent FlushSummaryWriter "
        "CloseSummaryWriter StatsAggregatorSetSummaryWriter",
        "writes summary files",
    ),
    **_effect("PyFunc PyFuncStateless EagerPyFunc", "runs Python code"),
    **_effect(
        "ReadFile MatchingFiles MatchingFilesDataset TFRecordDataset TFRecordDatasetV2 "
        "TextLineDataset FixedLengthRecordDataset FixedLengthRecordDatasetV2 CSVDataset "
        "CSVDatasetV2 LMDBDataset SqlDataset LoadDataset ImmutableConst "
        "InitializeTableFromTextFile InitializeTableFromTextFileV2 WholeFileReaderV2 "
        "TFRecordReaderV2 TextLineReaderV2 FixedLengthRecordReaderV2 LoadAndRemapMatrix",
        "reads files",
    ),
    **_effect(
        "DataServiceDataset DataServiceDatasetV2 DataServiceDatasetV3 DataServiceDatasetV4 "
        "RegisterDataset RegisterDatasetV2 DebugIdentity DebugIdentityV2 DebugIdentityV3 "
        "RemoteCall Send Recv _Send _Recv CollectiveReduce CollectiveReduceV2 "
        "CollectiveGather CollectiveGatherV2 CollectiveBcastSend CollectiveBcastRecv",
        "talks to other processes",
    ),
    **_effect("FileSystemSetConfiguration", "reconfigures file systems"),
    **_effect("XlaCallModule XlaCustomCall XlaCustomCallV2 XlaHostCompute", "runs native code"),
}
NOT_KNOWN = "not known to be safe"
